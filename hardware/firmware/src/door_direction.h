/*
 * door_direction.h - direction of a crossing from two offset beams, A (street
 * side) and B (inside).
 *
 * A mirror, state for state, of firmware_bridge/door_direction.py: a full
 * A-down B-down A-up B-up sequence is one person coming in (+1); B first is
 * going out (-1). A second person blocking the first beam again while the
 * first still blocks the second is a tailgater (the first is counted at that
 * moment). Half crossings and sequences stalled longer than timeout_ms are
 * counted, not reported. The timeout is evaluated when the next edge arrives,
 * as in the Python twin. tests/test_firmware_door_twin.py drives both with the
 * same edges and compares.
 *
 * Pure C99: builds for the AVR and for the host (host/door_tool.c).
 */
#ifndef FOOTFALL_DOOR_DIRECTION_H
#define FOOTFALL_DOOR_DIRECTION_H

#include <stdint.h>

enum { BEAM_A = 0, BEAM_B = 1 };

enum door_state {
	DOOR_IDLE = 0,
	DOOR_FIRST = 1,  /* only the first beam of the sequence blocked */
	DOOR_BOTH = 2,   /* both blocked */
	DOOR_SECOND = 3, /* first cleared, second still blocked */
};

/* Cumulative counters, same names as the Python twin's stats. The simavr
 * tests read them from SRAM (symbol door_stats in door.elf). */
typedef struct door_stats {
	uint32_t in;
	uint32_t out;
	uint32_t tailgate;
	uint32_t half_crossing;
	uint32_t timeout;
} door_stats_t;

typedef struct door_direction {
	uint32_t timeout_ms;
	uint32_t since;     /* tick of the last level change */
	uint8_t state;      /* enum door_state */
	uint8_t first;      /* BEAM_A or BEAM_B: the beam the sequence began with */
	uint8_t blocked[2]; /* current level of each beam */
	door_stats_t *stats;
} door_direction_t;

void door_direction_init(door_direction_t *d, uint32_t timeout_ms, door_stats_t *stats);

/* Beam `beam` became blocked (1) or clear (0) at t_ms. Returns +1 (in) or -1
 * (out) when a crossing completes, else 0. Repeated levels are ignored. */
int8_t door_direction_edge(door_direction_t *d, uint32_t t_ms, uint8_t beam, uint8_t blocked);

#endif
