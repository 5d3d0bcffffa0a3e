"""The words around the floor plan's generated reference (``docs/floorplan.md``).

:data:`INTRO` opens the page, :data:`EXAMPLE` (a complete small floor plan,
valid: the tests load it) closes it; ``footfall schema floorplan --markdown``
puts the reference rendered from
:class:`~heatmap.spatial.floorplan_model.FloorPlanFile` between them.
"""

INTRO = """\
A floor plan is a TOML file with the store's geometry: its outline, the street
outside, the radio walls, the shelves people walk around, the zones the reports
count, where the ceiling nodes hang, the doors with their beam pairs and the
pressure-tile arrays. The aggregator (`floor_plan` in `store.toml`) and
`footfall report`, `plan`, `calibrate`, `simulate` and `provision` read it.
The bundled demo store is `heatmap/spatial/data/default_store.toml`; a second
one is `bench/layouts/corner_grocer.toml`.

**Units.** Coordinates and sizes are in metres, in one frame of your choice
(e.g. the origin at the south-west inside corner, x east, y north); radio
losses are in dB and levels in dBm. A point is `[x, y]`; a polygon is its
corners in order, not closed (the first point is not repeated at the end).

**Validate** a file before you deploy it. Every error is one line that names
the key's path (for a geometric rule, the element's id too) and, for a typo,
the nearest valid key:

```console
$ footfall floorplan my_store.toml
my_store.toml: ok — store 'corner', 2 nodes, 3 zones, 1 doors, 3 walls, 2 shelves, 1 tile arrays
$ footfall floorplan typo.toml
footfall: error: doors[0].beam_gap: unknown key (did you mean 'beam_gap_m'?)
```

**Editor completion and checking.** The file's JSON Schema is
[`docs/schemas/floorplan.schema.json`](schemas/floorplan.schema.json)
(`footfall schema floorplan` prints it). [Taplo](https://taplo.tamasfe.dev/) and
VS Code's *Even Better TOML* read a `#:schema` directive on the file's first
line, a path relative to the TOML file or a URL:

```console
$ footfall schema floorplan > floorplan.schema.json    # next to my_store.toml
$ head -1 my_store.toml
#:schema ./floorplan.schema.json
```

This page is generated from the schema: `footfall schema floorplan --markdown >
docs/floorplan.md` (a test fails when it is out of date).

Ids (of the store and of every wall, shelf, zone, node, door and tile array)
are MQTT topic levels: 1 to 64 of `A-Z a-z 0-9 _ -`, unique within the plan.
"""

EXAMPLE = """\
#:schema ./floorplan.schema.json
# A 12 x 8 m corner shop: one door in the south front, an office behind a part
# wall in the north-east corner. Units: metres, dB, dBm; origin: south-west
# inside corner, x east, y north; the street is south (y < 0).

[store]
id = "corner"
name = "Corner Shop"
timezone = "Europe/Amsterdam"

[radio]                     # optional: the defaults, but for the exponent
path_loss_exponent = 2.5

[outline]
points = [[0, 0], [12, 0], [12, 8], [0, 8]]

[street]
points = [[-3, -3], [15, -3], [15, 0], [-3, 0]]

[[walls]]
id = "front_glass_w"
points = [[0, 0], [5, 0]]
attenuation_db = 4.0
[[walls]]
id = "front_glass_e"
points = [[6.5, 0], [12, 0]]
attenuation_db = 4.0
[[walls]]
id = "office_wall"
points = [[9, 5], [9, 8]]
attenuation_db = 5.0

[[shelves]]
id = "counter"
rect = [1.0, 1.0, 3.0, 1.8]         # [x0, y0, x1, y1]
[[shelves]]
id = "gondola"
points = [[2, 4], [8, 4], [8, 4.8], [2, 4.8]]

[[zones]]
id = "entrance"
name = "Entrance"
points = [[3.5, 0], [8, 0], [8, 2.5], [3.5, 2.5]]
[[zones]]
id = "aisle"
name = "Aisle"
points = [[0, 4.8], [9, 4.8], [9, 8], [0, 8]]
[[zones]]
id = "office"
points = [[9, 5], [12, 5], [12, 8], [9, 8]]

[[nodes]]
id = "n1"
x = 3.0
y = 3.0
z = 3.0
wifi_channel = 1
[[nodes]]
id = "n2"
x = 10.0
y = 3.0

[[doors]]
id = "front"
points = [[5, 0], [6.5, 0]]
node = "n1"
beam_gap_m = 0.10

[[tiles]]
id = "promo_tiles"
origin = [4.0, 3.0]
tile_m = 0.5
cols = 4
rows = 2
node = "n1"
"""
