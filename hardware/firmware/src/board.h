/*
 * board.h - what every footfall board does the same way (ATmega328P, 16 MHz):
 *
 *  - a 1 kHz tick (Timer1 CTC) counting milliseconds since reset, u32;
 *  - UART0 at 115200 8N1, transmit through a 256-byte ring emptied by the
 *    UDRE interrupt, so the main loop never waits on the line;
 *  - frames of hardware/protocol.md with the board id and a seq counter that
 *    starts at 0 on every reset (the HELLO) and counts every frame the board
 *    meant to send, so a frame dropped on a full ring shows as a seq gap;
 *  - HELLO once after reset (firmware version, kind, channels, MCUSR reset
 *    cause), HEARTBEAT every HEARTBEAT_MS;
 *  - the watchdog (reset if the main loop stalls for WDT period) and idle sleep
 *    between ticks.
 */
#ifndef FOOTFALL_BOARD_H
#define FOOTFALL_BOARD_H

#include <stdint.h>

#include "frame.h"

#define FW_MAJOR 1
#define FW_MINOR 0

#ifndef BOARD_ID
#define BOARD_ID 1 /* overridden by EEPROM byte 0 unless it is 0xFF (erased) */
#endif
#ifndef HEARTBEAT_MS
#define HEARTBEAT_MS 1000u
#endif
#ifndef BAUD
#define BAUD 115200UL
#endif

/* MCUSR as found at reset (PORF 1, EXTRF 2, BORF 4, WDRF 8). */
extern uint8_t board_reset_cause;
extern uint8_t board_id;
/* frames built but not queued because the ring was full (also a seq gap) */
extern uint16_t board_tx_dropped;

/* Set up clock, UART, watchdog; enable interrupts; send HELLO. */
void board_init(uint8_t kind, uint8_t channels);

/* Sleep until the next millisecond tick; returns the tick (ms since reset). */
uint32_t board_wait_tick(void);

/* Queue one frame; returns 1 if queued, 0 if dropped for lack of room
 * (its seq is consumed either way). */
uint8_t board_send(uint8_t type, const uint8_t *payload, uint8_t len);

/* Free bytes in the transmit ring. */
uint8_t board_tx_room(void);

/* Send a HEARTBEAT if one is due at tick `now`. */
void board_heartbeat(uint32_t now);

#endif
