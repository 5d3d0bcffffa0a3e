/*
 * door_tool.c - the firmware's door_direction.c on the host, to compare with
 * firmware_bridge/door_direction.py edge for edge (tests/test_firmware_door_twin.py).
 *
 * usage: door_tool [timeout_ms]     (default 3000)
 * stdin:  <t_ms> <A|B> <0|1>        one beam edge per line, in time order
 * stdout: cross <t_ms> <+1|-1>      for each completed crossing
 *         stats <in> <out> <tailgate> <half_crossing> <timeout>   at end of input
 */
#include <stdio.h>
#include <stdlib.h>

#include "../src/door_direction.h"

int main(int argc, char **argv)
{
	uint32_t timeout = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 0) : 3000u;
	door_stats_t stats = {0, 0, 0, 0, 0};
	door_direction_t d;
	door_direction_init(&d, timeout, &stats);

	unsigned long t;
	char beam;
	int level;
	while (scanf("%lu %c %d", &t, &beam, &level) == 3) {
		int8_t dir = door_direction_edge(&d, (uint32_t)t, beam == 'B' ? BEAM_B : BEAM_A,
						 (uint8_t)(level != 0));
		if (dir)
			printf("cross %lu %+d\n", t, dir);
	}
	printf("stats %lu %lu %lu %lu %lu\n", (unsigned long)stats.in, (unsigned long)stats.out,
	       (unsigned long)stats.tailgate, (unsigned long)stats.half_crossing,
	       (unsigned long)stats.timeout);
	return 0;
}
