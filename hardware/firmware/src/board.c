/*
 * board.c - clock, UART, framing, HELLO/HEARTBEAT, watchdog (see board.h).
 */
#include "board.h"

#include <avr/eeprom.h>
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/sleep.h>
#include <avr/wdt.h>
#include <util/atomic.h>

/* 115200 baud from 16 MHz: U2X, UBRR 16 -> 117647 baud (+2.1 %), the usual
 * Arduino setting, inside the +-4.5 % an 8N1 receiver tolerates */
#define UBRR_U2X ((F_CPU + 4UL * BAUD) / (8UL * BAUD) - 1UL)

uint8_t board_reset_cause __attribute__((section(".noinit")));
uint8_t board_id;
uint16_t board_tx_dropped;

static volatile uint32_t ticks;
static volatile uint8_t tick_pending;
/* transmit ring: the main loop writes at head, the UDRE interrupt reads at
 * tail; 256 entries so the u8 indices wrap by themselves */
static uint8_t tx_ring[256];
static volatile uint8_t tx_head;
static volatile uint8_t tx_tail;
static uint16_t seq;
static uint32_t next_heartbeat;

/* Runs before the C runtime: keep MCUSR for the HELLO and stop a watchdog
 * that survived a watchdog reset (avr-libc FAQ). */
void board_save_mcusr(void) __attribute__((naked, used, section(".init3")));
void board_save_mcusr(void)
{
	board_reset_cause = MCUSR;
	MCUSR = 0;
	wdt_disable();
}

ISR(TIMER1_COMPA_vect)
{
	ticks++;
	tick_pending = 1;
}

ISR(USART_UDRE_vect)
{
	uint8_t t = tx_tail;
	if (t != tx_head) {
		UDR0 = tx_ring[t];
		tx_tail = (uint8_t)(t + 1);
	} else {
		UCSR0B &= (uint8_t)~_BV(UDRIE0);
	}
}

uint8_t board_tx_room(void)
{
	return (uint8_t)(255u - (uint8_t)(tx_head - tx_tail));
}

uint8_t board_send(uint8_t type, const uint8_t *payload, uint8_t len)
{
	uint8_t wire[FRAME_MAX_WIRE];
	uint8_t n = frame_build(wire, board_id, seq++, type, payload, len);

	if (n == 0 || n > board_tx_room()) {
		board_tx_dropped++;
		return 0;
	}
	uint8_t h = tx_head;
	for (uint8_t i = 0; i < n; i++)
		tx_ring[h++] = wire[i];
	tx_head = h;
	ATOMIC_BLOCK(ATOMIC_RESTORESTATE)
	{
		UCSR0B |= _BV(UDRIE0);
	}
	return 1;
}

void board_heartbeat(uint32_t now)
{
	if ((int32_t)(now - next_heartbeat) < 0)
		return;
	if (board_tx_room() < FRAME_MAX_WIRE)
		return; /* stay due: sent on a later tick, no seq consumed */
	uint8_t p[HEARTBEAT_LEN];
	put_u32le(p, now);
	board_send(MSG_HEARTBEAT, p, HEARTBEAT_LEN);
	next_heartbeat += HEARTBEAT_MS;
}

uint32_t board_wait_tick(void)
{
	for (;;) {
		cli();
		if (tick_pending) {
			tick_pending = 0;
			uint32_t t = ticks;
			sei();
			wdt_reset();
			return t;
		}
		sleep_enable();
		sei(); /* the instruction after sei runs before any interrupt: no lost wake-up */
		sleep_cpu();
		sleep_disable();
	}
}

void board_init(uint8_t kind, uint8_t channels)
{
	/* Timer1 CTC at 1 kHz: F_CPU / 8 / 2000; first, so tick 0 is as close to
	 * reset as the C runtime allows */
	TCCR1A = 0;
	OCR1A = (uint16_t)(F_CPU / 8UL / 1000UL - 1UL);
	TIMSK1 = _BV(OCIE1A);
	TCCR1B = _BV(WGM12) | _BV(CS11);

	uint8_t stored = eeprom_read_byte((const uint8_t *)0);
	board_id = stored == 0xFF ? BOARD_ID : stored;

	/* UART0: 8N1, transmitter only (the board has nothing to receive in v1) */
	UBRR0H = (uint8_t)(UBRR_U2X >> 8);
	UBRR0L = (uint8_t)UBRR_U2X;
	UCSR0A = _BV(U2X0);
	UCSR0C = _BV(UCSZ01) | _BV(UCSZ00);
	UCSR0B = _BV(TXEN0);

	set_sleep_mode(SLEEP_MODE_IDLE);
	wdt_enable(WDTO_500MS);
	next_heartbeat = HEARTBEAT_MS;
	sei();

	uint8_t hello[HELLO_LEN] = {FW_MAJOR, FW_MINOR, kind, channels, board_reset_cause};
	board_send(MSG_HELLO, hello, HELLO_LEN);
}
