/*
 * board_sim.c - run a footfall board firmware under simavr: UART0 on a pty
 * (simavr's uart_pty part), beam and tile pins driven from a script whose
 * times are simulated CPU cycles, so a run is deterministic.
 *
 * usage: board_sim [-m mcu] [-f hz] [-w] [-d addr:len]... firmware.elf script
 *
 *   -m mcu        core (default atmega328p)
 *   -f hz         clock (default 16000000)
 *   -w            after printing the pty, wait for a line on stdin before
 *                 running (so the reader has the port open when HELLO goes
 *                 out), and after the run wait for stdin to close before
 *                 exiting (so the reader can drain the pty)
 *   -d addr:len   at the end print len bytes of data memory at addr (an ELF
 *                 data address such as 0x800100 or a data-space one, 0x100)
 *
 * Script, one item per line, '#' starts a comment, events in time order:
 *
 *   matrix C0-C5 D2-D7     tile matrix: rows (driven low one at a time by the
 *                          firmware) and columns (read, pulled up); a pressed
 *                          tile joins its row and column through a diode
 *   <cycle> pin D2 0|1     drive an input pin low or high
 *   <cycle> tile N 0|1     press (1) or release (0) tile N (row-major)
 *   <cycle> reset          external reset (MCUSR gets EXTRF)
 *   <cycle> end            stop
 *
 * stdout lines for the caller, all prefixed "board_sim: ":
 *   pty <path> | waiting | done cycles=<n> tx=<bytes> | mem <addr> <hex> | crashed
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "avr_extint.h"
#include "avr_ioport.h"
#include "avr_uart.h"
#include "sim_avr.h"
#include "sim_cycle_timers.h"
#include "sim_elf.h"
#include "sim_irq.h"
#include "uart_pty.h"

DEFINE_FIFO(uint8_t, uart_pty_fifo);

#define MAX_DUMPS 8
#define TX_HIGH_WATER 256 /* pause the core while the pty fifo is this full */

enum ev_kind { EV_PIN, EV_TILE, EV_RESET, EV_END };

typedef struct event {
	uint64_t cycle;
	int kind;
	char port;
	int bit;
	int index;
	int level;
} event_t;

typedef struct pinref {
	char port;
	int bit;
} pinref_t;

static avr_t *avr;
static uart_pty_t uart;
static event_t *events;
static size_t n_events, next_event;
static int want_reset, finished;
static uint32_t tx_bytes;

/* levels we drive from outside, per port 'A'.. */
static struct {
	uint8_t mask, value;
} drive[26];

static struct {
	int rows, cols;
	pinref_t row[8], col[8];
	uint8_t row_port_v, row_ddr_v;
	uint8_t pressed[64];
} mx;

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "board_sim: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(1);
}

static avr_irq_t *pin_irq(char port, int bit)
{
	avr_irq_t *irq = avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ(port), bit);
	if (!irq) {
		char p[2] = {port, 0};
		die("no port %s on this core", p);
	}
	return irq;
}

static void drive_pin(char port, int bit, int level)
{
	int i = port - 'A';
	uint8_t m = (uint8_t)(1u << bit);
	if ((drive[i].mask & m) && !(drive[i].value & m) == !level)
		return; /* already driven at that level */
	drive[i].mask |= m;
	if (level)
		drive[i].value |= (uint8_t)(1u << bit);
	else
		drive[i].value &= (uint8_t)~(1u << bit);
	/* the port's "external" level wins over its pull-up when the firmware
	 * writes PORTx, as a real driver would */
	avr_ioport_external_t ext = {.name = (unsigned)port, .mask = drive[i].mask,
				     .value = drive[i].value};
	avr_ioctl(avr, AVR_IOCTL_IOPORT_SET_EXTERNAL(port), &ext);
	avr_raise_irq(pin_irq(port, bit), level ? 1 : 0);
}

/* after a reset the PIN registers are cleared but the IRQs remember the last
 * level: raise every driven pin again */
static void reassert_pins(void)
{
	for (int i = 0; i < 26; i++)
		for (int b = 0; b < 8; b++)
			if (drive[i].mask & (1u << b)) {
				int level = (drive[i].value >> b) & 1;
				avr_raise_irq(pin_irq((char)('A' + i), b), !level);
				avr_raise_irq(pin_irq((char)('A' + i), b), level);
			}
}

static void matrix_update(void)
{
	for (int c = 0; c < mx.cols; c++) {
		int level = 1;
		for (int r = 0; r < mx.rows; r++) {
			uint8_t m = (uint8_t)(1u << mx.row[r].bit);
			int row_low = (mx.row_ddr_v & m) && !(mx.row_port_v & m);
			if (row_low && mx.pressed[r * mx.cols + c])
				level = 0;
		}
		drive_pin(mx.col[c].port, mx.col[c].bit, level);
	}
}

static void row_port_hook(avr_irq_t *irq, uint32_t value, void *param)
{
	(void)irq;
	(void)param;
	mx.row_port_v = (uint8_t)value;
	matrix_update();
}

static void row_ddr_hook(avr_irq_t *irq, uint32_t value, void *param)
{
	(void)irq;
	(void)param;
	mx.row_ddr_v = (uint8_t)value;
	matrix_update();
}

static void tx_hook(avr_irq_t *irq, uint32_t value, void *param)
{
	(void)irq;
	(void)value;
	(void)param;
	tx_bytes++;
}

static void apply(const event_t *e)
{
	switch (e->kind) {
	case EV_PIN:
		drive_pin(e->port, e->bit, e->level);
		break;
	case EV_TILE:
		mx.pressed[e->index] = (uint8_t)e->level;
		matrix_update();
		break;
	case EV_RESET:
		want_reset = 1;
		break;
	case EV_END:
		finished = 1;
		break;
	}
}

static avr_cycle_count_t script_timer(avr_t *a, avr_cycle_count_t when, void *param)
{
	(void)when;
	(void)param;
	while (next_event < n_events && events[next_event].cycle <= a->cycle) {
		apply(&events[next_event++]);
		if (want_reset || finished)
			return 0; /* the main loop takes over; re-armed after the reset */
	}
	return next_event < n_events ? events[next_event].cycle : 0;
}

static void arm_script(void)
{
	while (next_event < n_events && events[next_event].cycle <= avr->cycle && !want_reset &&
	       !finished)
		apply(&events[next_event++]);
	if (next_event < n_events && !want_reset && !finished)
		avr_cycle_timer_register(avr, events[next_event].cycle - avr->cycle, script_timer,
					 NULL);
}

static pinref_t parse_pin(const char *s)
{
	pinref_t p = {0, 0};
	if (strlen(s) != 2 || !isupper((unsigned char)s[0]) || s[1] < '0' || s[1] > '7')
		die("bad pin %s (want e.g. D2)", s);
	p.port = s[0];
	p.bit = s[1] - '0';
	return p;
}

/* "C0-C5" -> pins C0..C5 */
static int parse_range(const char *s, pinref_t *out)
{
	char a[8], b[8];
	if (sscanf(s, "%2[A-Z0-9]-%2[A-Z0-9]", a, b) != 2)
		die("bad pin range %s (want e.g. C0-C5)", s);
	pinref_t lo = parse_pin(a), hi = parse_pin(b);
	if (lo.port != hi.port || hi.bit < lo.bit)
		die("bad pin range %s", s);
	int n = 0;
	for (int bit = lo.bit; bit <= hi.bit; bit++)
		out[n++] = (pinref_t){lo.port, bit};
	return n;
}

static void read_script(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		die("cannot open script %s", path);
	size_t cap = 256;
	events = calloc(cap, sizeof(*events));
	char line[256];
	uint64_t last = 0;
	while (fgets(line, sizeof(line), f)) {
		char *hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		char w1[32] = "", w2[32] = "", w3[32] = "", w4[32] = "";
		int n = sscanf(line, "%31s %31s %31s %31s", w1, w2, w3, w4);
		if (n <= 0)
			continue;
		if (!strcmp(w1, "matrix")) {
			if (n != 3)
				die("bad matrix line: %s", line);
			mx.rows = parse_range(w2, mx.row);
			mx.cols = parse_range(w3, mx.col);
			if (mx.rows * mx.cols > 64)
				die("matrix larger than 64 tiles: %s", line);
			continue;
		}
		if (n_events == cap) {
			cap *= 2;
			events = realloc(events, cap * sizeof(*events));
		}
		event_t *e = &events[n_events];
		memset(e, 0, sizeof(*e));
		char *end;
		errno = 0;
		e->cycle = strtoull(w1, &end, 0);
		if (errno || *end)
			die("bad cycle count: %s", line);
		if (e->cycle < last)
			die("events out of time order at: %s", line);
		last = e->cycle;
		if (!strcmp(w2, "pin") && n == 4) {
			pinref_t p = parse_pin(w3);
			e->kind = EV_PIN;
			e->port = p.port;
			e->bit = p.bit;
			e->level = atoi(w4) ? 1 : 0;
		} else if (!strcmp(w2, "tile") && n == 4) {
			e->kind = EV_TILE;
			e->index = atoi(w3);
			e->level = atoi(w4) ? 1 : 0;
			if (e->index < 0 || e->index >= mx.rows * mx.cols)
				die("tile outside the declared matrix: %s", line);
		} else if (!strcmp(w2, "reset") && n == 2) {
			e->kind = EV_RESET;
		} else if (!strcmp(w2, "end") && n == 2) {
			e->kind = EV_END;
		} else {
			die("bad script line: %s", line);
		}
		n_events++;
	}
	fclose(f);
}

/* run as fast as the host allows: simulated time is counted in cycles */
static void no_sleep(avr_t *a, avr_cycle_count_t how_long)
{
	(void)a;
	(void)how_long;
}

static void wait_stdin_line(void)
{
	char buf[64];
	if (!fgets(buf, sizeof(buf), stdin))
		return;
}

static void pause_ms(int ms)
{
	struct timespec ts = {0, (long)ms * 1000000L};
	nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
	const char *mcu = "atmega328p";
	uint32_t freq = 16000000;
	int wait = 0;
	struct {
		uint32_t addr, len;
	} dumps[MAX_DUMPS];
	int n_dumps = 0;
	int opt;

	while ((opt = getopt(argc, argv, "m:f:wd:")) != -1) {
		switch (opt) {
		case 'm':
			mcu = optarg;
			break;
		case 'f':
			freq = (uint32_t)strtoul(optarg, NULL, 0);
			break;
		case 'w':
			wait = 1;
			break;
		case 'd':
			if (n_dumps == MAX_DUMPS)
				die("too many -d%s", "");
			if (sscanf(optarg, "%i:%i", (int *)&dumps[n_dumps].addr,
				   (int *)&dumps[n_dumps].len) != 2)
				die("bad -d %s (want addr:len)", optarg);
			dumps[n_dumps].addr &= 0xFFFF; /* ELF data addresses start at 0x800000 */
			n_dumps++;
			break;
		default:
			fprintf(stderr,
				"usage: board_sim [-m mcu] [-f hz] [-w] [-d addr:len]... fw.elf script\n");
			return 2;
		}
	}
	if (argc - optind != 2) {
		fprintf(stderr, "usage: board_sim [-m mcu] [-f hz] [-w] [-d addr:len]... fw.elf script\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	unsetenv("SIMAVR_UART_TAP");
	unsetenv("SIMAVR_UART_XTERM");

	read_script(argv[optind + 1]);

	elf_firmware_t fw;
	memset(&fw, 0, sizeof(fw));
	if (elf_read_firmware(argv[optind], &fw) != 0)
		die("cannot read firmware %s", argv[optind]);
	snprintf(fw.mmcu, sizeof(fw.mmcu), "%s", mcu);
	fw.frequency = freq;

	avr = avr_make_mcu_by_name(fw.mmcu);
	if (!avr)
		die("unknown core %s", fw.mmcu);
	avr_init(avr);
	avr_load_firmware(avr, &fw);
	avr->sleep = no_sleep;
	avr->log = 1; /* errors only */

	uart_pty_init(avr, &uart);
	uart_pty_connect(&uart, '0');
	avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT),
				tx_hook, NULL);
	if (mx.rows) {
		avr_irq_register_notify(pin_irq(mx.row[0].port, IOPORT_IRQ_REG_PORT), row_port_hook,
					NULL);
		avr_irq_register_notify(pin_irq(mx.row[0].port, IOPORT_IRQ_DIRECTION_ALL),
					row_ddr_hook, NULL);
		matrix_update();
	}
	printf("board_sim: pty %s\n", uart.pty.slavename);
	if (wait) {
		printf("board_sim: waiting\n");
		wait_stdin_line();
	}

	int state = cpu_Running;
	int throttle = 1;
	while (!finished) {
		if (avr->pc == avr->reset_pc) {
			/* power-on or any reset (ours, the watchdog's): cycle timers are gone */
			/* simavr polls INT0/INT1 every cycle while their pin is low (level
			 * trigger), even with the interrupt disabled, which stops the core
			 * from sleeping; the firmware does not use them: poll only on edges */
			avr_extint_set_strict_lvl_trig(avr, 0, 0);
			avr_extint_set_strict_lvl_trig(avr, 1, 0);
			reassert_pins();
			arm_script();
		}
		state = avr_run(avr);
		if (state == cpu_Done || state == cpu_Crashed)
			break;
		if (want_reset) {
			want_reset = 0;
			avr_reset(avr);
			avr_regbit_set(avr, avr->reset_flags.extrf);
		}
		/* the pty fifo drops bytes when full: wait for the reader, but give up
		 * for good (dropping bytes) if it has not read anything for 10 s */
		if (throttle && uart_pty_fifo_get_read_size(&uart.pty.in) > TX_HIGH_WATER) {
			int i = 0;
			while (i++ < 10000 &&
			       uart_pty_fifo_get_read_size(&uart.pty.in) > TX_HIGH_WATER)
				pause_ms(1);
			if (i > 10000) {
				fprintf(stderr, "board_sim: nobody reads the pty; UART bytes dropped\n");
				throttle = 0;
			}
		}
	}
	/* let the pty thread write out what the UART sent (bounded: 5 s) */
	for (int i = 0; i < 5000 && !uart_pty_fifo_isempty(&uart.pty.in); i++)
		pause_ms(1);
	if (state == cpu_Crashed)
		printf("board_sim: crashed\n");
	printf("board_sim: done cycles=%llu tx=%u\n", (unsigned long long)avr->cycle, tx_bytes);
	for (int i = 0; i < n_dumps; i++) {
		printf("board_sim: mem 0x%04x ", dumps[i].addr);
		for (uint32_t k = 0; k < dumps[i].len; k++) {
			uint32_t a = dumps[i].addr + k;
			printf("%02x", a <= avr->ramend ? avr->data[a] : 0);
		}
		printf("\n");
	}
	fflush(stdout);
	if (wait)
		while (fgetc(stdin) != EOF)
			;
	/* no uart_pty_stop(): it signals its thread with SIGINT; exiting ends it */
	return state == cpu_Crashed ? 3 : 0;
}
