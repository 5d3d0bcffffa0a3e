/*
 * floor_main.c - floor board: a matrix of pressure-switch tiles, rows on
 * PC0.. (driven low one at a time), columns on PD2.. (inputs, pulled up), one
 * diode per tile so any number of pressed tiles reads without ghosts. Every
 * millisecond the whole matrix is scanned; each tile is debounced on its own;
 * each accepted change is one TILE_CHANGE frame (tile index row-major,
 * state 1 pressed / 0 released) stamped with the tick it began.
 *
 * A burst of changes larger than the transmit ring waits in the tiles
 * themselves (reported state != debounced state) and goes out as the line
 * drains, so nothing is dropped; a tile that flips back before its change was
 * sent reports nothing.
 */
#include <avr/io.h>
#include <util/delay.h>

#include "board.h"
#include "debounce.h"

#ifndef TILE_ROWS
#define TILE_ROWS 6 /* PC0..PC5 */
#endif
#ifndef TILE_COLS
#define TILE_COLS 6 /* PD2..PD7 */
#endif
#ifndef TILE_DEBOUNCE_MS
#define TILE_DEBOUNCE_MS 20
#endif
#ifndef SCAN_SETTLE_US
#define SCAN_SETTLE_US 20 /* column RC settle after selecting a row */
#endif

#define TILES (TILE_ROWS * TILE_COLS)
#define COL_SHIFT 2
#define ROW_MASK ((uint8_t)((1u << TILE_ROWS) - 1u))
#define COL_MASK ((uint8_t)(((1u << TILE_COLS) - 1u) << COL_SHIFT))

#if TILE_ROWS > 6 || TILE_COLS > 6 || TILES > 255
#error "the floor board has 6 row pins (PC0..PC5) and 6 column pins (PD2..PD7)"
#endif

static debounce_t tiles[TILES];
static uint8_t reported[(TILES + 7) / 8];
static uint8_t dirty; /* some tile changed since everything was last reported */

static uint8_t reported_state(uint8_t i)
{
	return (uint8_t)((reported[i >> 3] >> (i & 7)) & 1u);
}

static void set_reported(uint8_t i, uint8_t state)
{
	if (state)
		reported[i >> 3] |= (uint8_t)(1u << (i & 7));
	else
		reported[i >> 3] &= (uint8_t) ~(1u << (i & 7));
}

static void scan(uint32_t now)
{
	for (uint8_t r = 0; r < TILE_ROWS; r++) {
		PORTC = (uint8_t)((PORTC | ROW_MASK) & ~(1u << r));
		_delay_us(SCAN_SETTLE_US);
		uint8_t low = (uint8_t)(~PIND & COL_MASK);
		debounce_t *t = &tiles[r * TILE_COLS];
		for (uint8_t c = 0; c < TILE_COLS; c++, t++) {
			uint8_t pressed = (uint8_t)((low >> (c + COL_SHIFT)) & 1u);
			if ((pressed != t->stable || t->count) &&
			    debounce_sample(t, pressed, now, TILE_DEBOUNCE_MS))
				dirty = 1;
		}
	}
	PORTC |= ROW_MASK;
}

static void report(void)
{
	if (!dirty)
		return;
	for (uint8_t i = 0; i < TILES; i++) {
		uint8_t state = tiles[i].stable;
		if (state == reported_state(i))
			continue;
		if (board_tx_room() < FRAME_MAX_WIRE)
			return; /* the rest waits for the line to drain */
		uint8_t p[TILE_CHANGE_LEN];
		put_u32le(p, tiles[i].edge_at);
		p[4] = i;
		p[5] = state;
		board_send(MSG_TILE_CHANGE, p, TILE_CHANGE_LEN);
		set_reported(i, state);
	}
	dirty = 0; /* everything reported */
}

int main(void)
{
	DDRC |= ROW_MASK;
	PORTC |= ROW_MASK; /* rows idle high */
	DDRD &= (uint8_t)~COL_MASK;
	PORTD |= COL_MASK; /* column pull-ups (add 4.7k externally for long runs) */

	board_init(KIND_FLOOR, TILES); /* tiles[] start released: .bss is zero */

	for (;;) {
		uint32_t now = board_wait_tick();
		scan(now);
		board_heartbeat(now);
		report();
	}
}
