"""From localized tracks to what people look at: analytics (door flow, occupancy,
dwell, zones), zone-to-zone flows, pictures over the floor plan, the store report
and, for simulated stores, the comparison with ground truth.
"""
