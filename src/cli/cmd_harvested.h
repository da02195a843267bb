/*
 * cmd_harvested.h - `smimegate key harvested ...` (cmd_harvested.c).
 */
#ifndef SG_CLI_CMD_HARVESTED_H
#define SG_CLI_CMD_HARVESTED_H

/* `key harvested SUB ...`: ARGV[0] is "harvested".  Returns the exit
 * code. */
int cmd_key_harvested(int argc, char **argv);

#endif /* SG_CLI_CMD_HARVESTED_H */
