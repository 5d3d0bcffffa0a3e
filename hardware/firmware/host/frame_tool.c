/*
 * frame_tool.c - the firmware's frame.c on the host, for golden-byte tests
 * against firmware_bridge/protocol.py (tests/test_firmware_frame_golden.py).
 *
 * Reads commands on stdin, one per line, answers one line each:
 *   enc <board> <seq> <type> <payload-hex|->  ->  <wire-hex incl. 00>
 *   dec <cobs-hex without delimiter>          ->  ok <board> <seq> <type> <payload-hex|->
 *                                                 | err cobs|short|crc|version
 *   crc <hex|->                               ->  <crc as 4 hex digits>
 *   cobs <hex|->                              ->  <encoded hex>
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/frame.h"

static int unhex(const char *s, uint8_t *out, int max)
{
	if (!strcmp(s, "-"))
		return 0;
	int n = (int)strlen(s);
	if (n % 2 || n / 2 > max)
		return -1;
	for (int i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	return n / 2;
}

static void puthex(const uint8_t *p, int n)
{
	if (n == 0)
		fputs("-", stdout);
	for (int i = 0; i < n; i++)
		printf("%02x", p[i]);
}

int main(void)
{
	char line[1024], cmd[16], a[600];
	unsigned board, seq, type;

	while (fgets(line, sizeof(line), stdin)) {
		uint8_t in[300], out[300];
		if (sscanf(line, "enc %u %u %u %599s", &board, &seq, &type, a) == 4) {
			int n = unhex(a, in, FRAME_MAX_PAYLOAD);
			if (n < 0) {
				puts("err arg");
				continue;
			}
			uint8_t m = frame_build(out, (uint8_t)board, (uint16_t)seq, (uint8_t)type, in,
						(uint8_t)n);
			puthex(out, m);
		} else if (sscanf(line, "%15s %599s", cmd, a) == 2 && !strcmp(cmd, "dec")) {
			int n = unhex(a, in, 255);
			int16_t m = n < 0 ? -1 : cobs_decode(in, (uint8_t)n, out);
			if (m < 0) {
				fputs("err cobs", stdout);
			} else if (m < (int)FRAME_HEADER_LEN + 2) {
				fputs("err short", stdout);
			} else if (crc16_ccitt(out, (uint8_t)(m - 2)) !=
				   (uint16_t)(out[m - 2] | (out[m - 1] << 8))) {
				fputs("err crc", stdout);
			} else if (out[0] != PROTOCOL_VERSION) {
				fputs("err version", stdout);
			} else {
				printf("ok %u %u %u ", out[1], (unsigned)(out[2] | (out[3] << 8)), out[4]);
				puthex(out + FRAME_HEADER_LEN, m - (int)FRAME_HEADER_LEN - 2);
			}
		} else if (sscanf(line, "%15s %599s", cmd, a) == 2 && !strcmp(cmd, "crc")) {
			int n = unhex(a, in, 255);
			if (n < 0) {
				puts("err arg");
				continue;
			}
			printf("%04x", crc16_ccitt(in, (uint8_t)n));
		} else if (sscanf(line, "%15s %599s", cmd, a) == 2 && !strcmp(cmd, "cobs")) {
			int n = unhex(a, in, 253);
			if (n < 0) {
				puts("err arg");
				continue;
			}
			puthex(out, cobs_encode(in, (uint8_t)n, out));
		} else {
			fputs("err command", stdout);
		}
		putchar('\n');
		fflush(stdout);
	}
	return 0;
}
