/*
 * door_direction.c - see door_direction.h; mirrors firmware_bridge/door_direction.py.
 */
#include "door_direction.h"

void door_direction_init(door_direction_t *d, uint32_t timeout_ms, door_stats_t *stats)
{
	d->timeout_ms = timeout_ms;
	d->since = 0;
	d->state = DOOR_IDLE;
	d->first = BEAM_A;
	d->blocked[BEAM_A] = 0;
	d->blocked[BEAM_B] = 0;
	d->stats = stats;
}

static int8_t count(door_direction_t *d)
{
	if (d->first == BEAM_A) {
		d->stats->in++;
		return 1;
	}
	d->stats->out++;
	return -1;
}

static int8_t step(door_direction_t *d, uint8_t beam, uint8_t blocked)
{
	uint8_t second = d->first == BEAM_A ? BEAM_B : BEAM_A;

	switch (d->state) {
	case DOOR_IDLE:
		if (blocked) {
			d->first = beam;
			d->state = DOOR_FIRST;
		}
		return 0;
	case DOOR_FIRST:
		if (beam == second && blocked) {
			d->state = DOOR_BOTH;
		} else if (beam == d->first && !blocked) {
			d->stats->half_crossing++;
			d->state = DOOR_IDLE;
		}
		return 0;
	case DOOR_BOTH:
		if (beam == d->first && !blocked)
			d->state = DOOR_SECOND;
		else if (beam == second && !blocked)
			d->state = DOOR_FIRST; /* stepped back out of the second beam */
		return 0;
	default: /* DOOR_SECOND: first beam clear, second still blocked */
		if (beam == second && !blocked) {
			d->state = DOOR_IDLE;
			return count(d);
		}
		if (beam == d->first && blocked) {
			/* the next person enters the first beam while this one is in the second */
			d->stats->tailgate++;
			d->state = DOOR_BOTH;
			return count(d);
		}
		return 0;
	}
}

static void restart_from_levels(door_direction_t *d)
{
	uint8_t a = d->blocked[BEAM_A], b = d->blocked[BEAM_B];

	if (a && b) {
		d->state = DOOR_BOTH; /* keep the stalled sequence's first beam */
	} else if (a || b) {
		d->first = a ? BEAM_A : BEAM_B;
		d->state = DOOR_FIRST;
	} else {
		d->state = DOOR_IDLE;
	}
}

int8_t door_direction_edge(door_direction_t *d, uint32_t t_ms, uint8_t beam, uint8_t blocked)
{
	blocked = blocked ? 1 : 0;
	beam = beam ? BEAM_B : BEAM_A;
	if (d->blocked[beam] == blocked)
		return 0; /* repeated level: nothing changed */
	if (d->state != DOOR_IDLE && (uint32_t)(t_ms - d->since) > d->timeout_ms) {
		/* stalled sequence: restart from the levels just before this edge */
		d->stats->timeout++;
		restart_from_levels(d);
	}
	d->blocked[beam] = blocked;
	int8_t result = step(d, beam, blocked);
	d->since = t_ms;
	if (d->state == DOOR_IDLE && (d->blocked[BEAM_A] || d->blocked[BEAM_B])) {
		/* someone is still in a beam after a sequence ended: start anew from levels */
		restart_from_levels(d);
	}
	return result;
}
