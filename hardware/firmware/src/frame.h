/*
 * frame.h - UART frame format v1 of the footfall sensor boards.
 *
 * A frame on the wire is COBS(body) followed by 0x00, where body is
 *
 *     ver:u8  board:u8  seq:u16le  type:u8  payload[...]  crc:u16le
 *
 * and crc is CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection,
 * no xorout) over ver..payload. Byte-exact description with examples:
 * hardware/protocol.md. Python twin: firmware_bridge/protocol.py.
 *
 * Pure C99: builds for the AVR and for the host (tests, host/frame_tool.c).
 */
#ifndef FOOTFALL_FRAME_H
#define FOOTFALL_FRAME_H

#include <stdint.h>

#define PROTOCOL_VERSION 1u

enum msg_type {
	MSG_HELLO = 0x01,
	MSG_HEARTBEAT = 0x02,
	MSG_DOOR_CROSSING = 0x10,
	MSG_TILE_CHANGE = 0x20,
};

enum board_kind {
	KIND_DOOR = 1,
	KIND_FLOOR = 2,
};

/* payload sizes of v1 messages */
#define HELLO_LEN 5u         /* fw_major fw_minor kind channels reset_cause */
#define HEARTBEAT_LEN 4u     /* tick_ms:u32 */
#define DOOR_CROSSING_LEN 5u /* tick_ms:u32 dir:i8 */
#define TILE_CHANGE_LEN 6u   /* tick_ms:u32 tile:u8 state:u8 */

#define FRAME_HEADER_LEN 5u
#define FRAME_MAX_PAYLOAD 8u
#define FRAME_MAX_BODY (FRAME_HEADER_LEN + FRAME_MAX_PAYLOAD + 2u)
/* COBS adds one code byte (bodies are < 254 bytes), plus the 0x00 delimiter */
#define FRAME_MAX_WIRE (FRAME_MAX_BODY + 2u)

/* One step of CRC-16/CCITT-FALSE: start from 0xFFFF. */
uint16_t crc16_ccitt_update(uint16_t crc, uint8_t byte);
uint16_t crc16_ccitt(const uint8_t *data, uint8_t len);

/* COBS-encode len (< 254) bytes into dst (room for len + 1); returns the
 * encoded length, without delimiter. The output never contains 0x00. */
uint8_t cobs_encode(const uint8_t *src, uint8_t len, uint8_t *dst);

/* COBS-decode len bytes (no delimiter) into dst; returns the decoded length,
 * or -1 if src is not valid COBS (a 0x00 inside, or a code past the end). */
int16_t cobs_decode(const uint8_t *src, uint8_t len, uint8_t *dst);

/* Build the whole wire frame (COBS body + 0x00) into wire, which needs
 * FRAME_MAX_WIRE bytes; returns its length, or 0 if len > FRAME_MAX_PAYLOAD. */
uint8_t frame_build(uint8_t *wire, uint8_t board, uint16_t seq, uint8_t type,
		    const uint8_t *payload, uint8_t len);

/* Little-endian helpers for payloads. */
void put_u32le(uint8_t *p, uint32_t v);
uint32_t get_u32le(const uint8_t *p);

#endif
