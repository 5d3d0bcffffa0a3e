/*
 * frame.c - CRC-16/CCITT-FALSE, COBS and frame building (see frame.h).
 */
#include "frame.h"

#ifdef __AVR__
#include <util/crc16.h>
#endif

uint16_t crc16_ccitt_update(uint16_t crc, uint8_t byte)
{
#ifdef __AVR__
	/* avr-libc's xmodem step is poly 0x1021, unreflected: with init 0xFFFF
	 * it is CCITT-FALSE */
	return _crc_xmodem_update(crc, byte);
#else
	crc ^= (uint16_t)byte << 8;
	for (uint8_t i = 0; i < 8; i++)
		crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
	return crc;
#endif
}

uint16_t crc16_ccitt(const uint8_t *data, uint8_t len)
{
	uint16_t crc = 0xFFFFu;
	for (uint8_t i = 0; i < len; i++)
		crc = crc16_ccitt_update(crc, data[i]);
	return crc;
}

uint8_t cobs_encode(const uint8_t *src, uint8_t len, uint8_t *dst)
{
	uint8_t code_at = 0; /* where the current block's code byte goes */
	uint8_t out = 1;
	uint8_t code = 1;    /* 1 + data bytes in the current block */

	for (uint8_t i = 0; i < len; i++) {
		if (src[i] == 0) {
			dst[code_at] = code;
			code_at = out++;
			code = 1;
		} else {
			dst[out++] = src[i];
			if (++code == 0xFF && i + 1u < len) {
				dst[code_at] = code;
				code_at = out++;
				code = 1;
			}
		}
	}
	dst[code_at] = code;
	return out;
}

int16_t cobs_decode(const uint8_t *src, uint8_t len, uint8_t *dst)
{
	uint8_t in = 0;
	uint8_t out = 0;

	while (in < len) {
		uint8_t code = src[in++];
		if (code == 0 || (uint16_t)in + code - 1u > len)
			return -1;
		for (uint8_t k = 1; k < code; k++) {
			if (src[in] == 0)
				return -1;
			dst[out++] = src[in++];
		}
		if (code != 0xFF && in < len)
			dst[out++] = 0;
	}
	return out;
}

uint8_t frame_build(uint8_t *wire, uint8_t board, uint16_t seq, uint8_t type,
		    const uint8_t *payload, uint8_t len)
{
	uint8_t body[FRAME_MAX_BODY];
	uint8_t n = 0;

	if (len > FRAME_MAX_PAYLOAD)
		return 0;
	body[n++] = PROTOCOL_VERSION;
	body[n++] = board;
	body[n++] = (uint8_t)(seq & 0xFF);
	body[n++] = (uint8_t)(seq >> 8);
	body[n++] = type;
	for (uint8_t i = 0; i < len; i++)
		body[n++] = payload[i];
	uint16_t crc = crc16_ccitt(body, n);
	body[n++] = (uint8_t)(crc & 0xFF);
	body[n++] = (uint8_t)(crc >> 8);

	uint8_t m = cobs_encode(body, n, wire);
	wire[m++] = 0x00;
	return m;
}

void put_u32le(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

uint32_t get_u32le(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}
