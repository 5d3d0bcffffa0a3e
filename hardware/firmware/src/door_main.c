/*
 * door_main.c - door board: two offset beams, A (street side) on PD2 and
 * B (inside) on PD3, sampled every millisecond, debounced, fed to the
 * direction state machine; each completed crossing is one DOOR_CROSSING frame
 * stamped with the tick of the edge that completed it. PB5 (the Nano's LED)
 * is lit while either beam is blocked, for aligning the beams.
 *
 * Beam receivers are open-collector outputs pulled up by the AVR; by default
 * a blocked beam reads low (BEAM_BLOCKED_LEVEL=0), build with
 * BEAM_BLOCKED_LEVEL=1 for sensors wired dark-on the other way round.
 */
#include <avr/io.h>

#include "board.h"
#include "debounce.h"
#include "door_direction.h"

#ifndef BEAM_DEBOUNCE_MS
#define BEAM_DEBOUNCE_MS 5
#endif
#ifndef DOOR_TIMEOUT_MS
#define DOOR_TIMEOUT_MS 3000UL
#endif
#ifndef BEAM_BLOCKED_LEVEL
#define BEAM_BLOCKED_LEVEL 0
#endif

#define BEAM_A_BIT PD2
#define BEAM_B_BIT PD3
#define LED_BIT PB5

/* cumulative direction counters; the simavr tests read this symbol */
door_stats_t door_stats;

static door_direction_t door;
static debounce_t beams[2];

static uint8_t blocked(uint8_t pins, uint8_t bit)
{
	return (uint8_t)(((pins >> bit) & 1u) == BEAM_BLOCKED_LEVEL);
}

int main(void)
{
	DDRD &= (uint8_t)~(_BV(BEAM_A_BIT) | _BV(BEAM_B_BIT));
	PORTD |= _BV(BEAM_A_BIT) | _BV(BEAM_B_BIT); /* pull-ups for open-collector receivers */
	DDRB |= _BV(LED_BIT);

	board_init(KIND_DOOR, 2);
	debounce_init(&beams[BEAM_A], 0);
	debounce_init(&beams[BEAM_B], 0);
	door_direction_init(&door, DOOR_TIMEOUT_MS, &door_stats);

	for (;;) {
		uint32_t now = board_wait_tick();
		uint8_t pins = PIND;
		uint8_t raw[2] = {blocked(pins, BEAM_A_BIT), blocked(pins, BEAM_B_BIT)};

		for (uint8_t b = BEAM_A; b <= BEAM_B; b++) {
			if (!debounce_sample(&beams[b], raw[b], now, BEAM_DEBOUNCE_MS))
				continue;
			int8_t dir = door_direction_edge(&door, beams[b].edge_at, b, beams[b].stable);
			if (dir) {
				uint8_t p[DOOR_CROSSING_LEN];
				put_u32le(p, beams[b].edge_at);
				p[4] = (uint8_t)dir;
				board_send(MSG_DOOR_CROSSING, p, DOOR_CROSSING_LEN);
			}
		}
		if (beams[BEAM_A].stable || beams[BEAM_B].stable)
			PORTB |= _BV(LED_BIT);
		else
			PORTB &= (uint8_t)~_BV(LED_BIT);
		board_heartbeat(now);
	}
}
