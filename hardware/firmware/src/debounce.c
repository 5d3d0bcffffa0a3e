/*
 * debounce.c - see debounce.h.
 */
#include "debounce.h"

void debounce_init(debounce_t *d, uint8_t level)
{
	d->candidate_at = 0;
	d->edge_at = 0;
	d->stable = level ? 1 : 0;
	d->count = 0;
}

uint8_t debounce_sample(debounce_t *d, uint8_t raw, uint32_t now, uint8_t need)
{
	raw = raw ? 1 : 0;
	if (raw == d->stable) {
		d->count = 0;
		return 0;
	}
	if (d->count == 0)
		d->candidate_at = now;
	if (++d->count < need)
		return 0;
	d->stable = raw;
	d->edge_at = d->candidate_at;
	d->count = 0;
	return 1;
}
