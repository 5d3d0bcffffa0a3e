/*
 * debounce.h - integrating debouncer for one input sampled once per tick.
 *
 * A new level is accepted after `need` consecutive samples at that level; a
 * shorter glitch is ignored. The accepted edge is stamped with the tick of
 * the first sample at the new level, so every edge carries the same delay and
 * time differences between edges are preserved to the tick.
 *
 * Pure C99: builds for the AVR and for the host.
 */
#ifndef FOOTFALL_DEBOUNCE_H
#define FOOTFALL_DEBOUNCE_H

#include <stdint.h>

typedef struct debounce {
	uint32_t candidate_at; /* tick of the first sample at the candidate level */
	uint32_t edge_at;      /* tick stamped on the last accepted edge */
	uint8_t stable;        /* accepted level, 0 or 1 */
	uint8_t count;         /* consecutive samples at the other level */
} debounce_t;

void debounce_init(debounce_t *d, uint8_t level);

/* Feed one sample taken at tick `now`; returns 1 when the accepted level
 * changed (then d->stable is the new level and d->edge_at its tick). */
uint8_t debounce_sample(debounce_t *d, uint8_t raw, uint32_t now, uint8_t need);

#endif
