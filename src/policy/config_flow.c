/*
 * config_flow.c - [flow NAME] sections: mail flow policies.  (Being
 * written: until then a [flow] section is refused.)
 */
#include "policy/config_int.h"

#include <stdlib.h>

int
cfg_flow_section(struct parser *ps, const char *name)
{
	(void)name;
	return cfg_fail(ps, "[flow] sections are not supported yet");
}

int
cfg_flow_key(struct parser *ps, const char *k, const char *v)
{
	(void)k;
	(void)v;
	return cfg_fail(ps, "[flow] sections are not supported yet");
}

int
cfg_flow_finish(struct parser *ps)
{
	(void)ps;
	return 0;
}

void
cfg_flow_free(struct cfg *c)
{
	free(c->flows);
}

const struct cfg_flow *
cfg_flow_match(const struct cfg *cfg, const char *listener,
               const struct sockaddr *sa, const char *helo,
               const char *sender_domain)
{
	(void)cfg;
	(void)listener;
	(void)sa;
	(void)helo;
	(void)sender_domain;
	return NULL;
}

const struct cfg_flow *
cfg_flow(const struct cfg *cfg, const char *name)
{
	(void)cfg;
	(void)name;
	return NULL;
}
