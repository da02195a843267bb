/*
 * t_flow.c - [flow NAME] mail flow policies (config_flow.c): every key,
 * the defaults, errors with their FILE:LINE, and matching tables
 * (listeners, client networks v4/v6/mapped, HELO globs, sender domains
 * and subdomains, the null sender, first match wins).
 */
#include "unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "policy/config.h"

static char *
write_tmp(const char *text)
{
	char *path = strdup("/tmp/t_flow_XXXXXX");
	int fd = mkstemp(path);
	if (fd == -1 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		abort();
	close(fd);
	return path;
}

/* Two listeners (lines 1-6), then TEXT. */
#define LISTENERS                                                              \
	"[listener in]\nlisten = 127.0.0.1:1\nrole = incoming\n"               \
	"[listener in2]\nlisten = 127.0.0.1:2\nrole = incoming\n"

/* Loads LISTENERS and TEXT; NULL (and a failed check) when it does not
 * load. */
static struct cfg *
load(const char *text)
{
	char buf[8192], err[512] = "";
	char *path;
	struct cfg *c = NULL;

	snprintf(buf, sizeof(buf), "%s%s", LISTENERS, text);
	path = write_tmp(buf);
	if (cfg_load(path, &c, err, sizeof(err)) != SG_OK)
		unit_fail(__FILE__, __LINE__, err);
	unlink(path);
	free(path);
	return c;
}

static void
parses_every_key(void)
{
	struct cfg *c =
	    load("[flow partners]\n"
	         "listeners = in, in2\n"
	         "clients = 192.0.2.0/24, 2001:db8::/32 "
	         "198.51.100.7\n"
	         "helo = *.Partner.example, mx.other.example\n"
	         "sender_domains = Partner.example, .partner.example\n"
	         "action = Relay\n"
	         "smime_decrypt_verify = off\n"
	         "signature = remove\n"
	         "harvest = on\n"
	         "harvest_on_failure = on\n"
	         "harvest_updated = on\n");
	const struct cfg_flow *f = c ? cfg_flow(c, "partners") : NULL;

	CHECK(f != NULL);
	if (f == NULL)
		goto out;
	CHECK_EQ(c->nflows, 1);
	CHECK_STR(f->name, "partners");
	CHECK(f->listeners && f->listeners[0] && f->listeners[1] &&
	      f->listeners[2] == NULL);
	CHECK_STR(f->listeners[0], "in");
	CHECK_STR(f->listeners[1], "in2");
	CHECK_EQ(f->nclients, 3);
	CHECK(f->clients && f->clients[0].family == AF_INET &&
	      f->clients[0].prefix == 24);
	CHECK(f->clients && f->clients[1].family == AF_INET6 &&
	      f->clients[1].prefix == 32);
	CHECK(f->clients && f->clients[2].family == AF_INET &&
	      f->clients[2].prefix == 32);
	CHECK(f->helo && f->helo[2] == NULL);
	CHECK_STR(f->helo[0], "*.partner.example"); /* lowercased */
	CHECK_STR(f->helo[1], "mx.other.example");
	CHECK(f->sender_domains && f->sender_domains[2] == NULL);
	CHECK_STR(f->sender_domains[0], "partner.example");
	CHECK_STR(f->sender_domains[1], ".partner.example");
	CHECK_EQ(f->action, CFG_FLOW_RELAY);
	CHECK_EQ(f->decrypt_verify, 0);
	CHECK_EQ(f->remove_signature, 1);
	CHECK_EQ(f->harvest, 1);
	CHECK_EQ(f->harvest_on_failure, 1);
	CHECK_EQ(f->harvest_updated, 1);
	CHECK(cfg_flow(c, "Partners") == NULL); /* names: case counts */
	CHECK(cfg_flow(c, "other") == NULL);
out:
	cfg_free(c);
}

static void
defaults(void)
{
	struct cfg *c = load("[flow a]\naction = accept\n"
	                     "[flow b]\naction = reject\nsignature = keep\n"
	                     "smime_decrypt_verify = on\n");
	const struct cfg_flow *a = c ? cfg_flow(c, "a") : NULL;
	const struct cfg_flow *b = c ? cfg_flow(c, "b") : NULL;

	CHECK(a != NULL && b != NULL);
	if (a == NULL || b == NULL)
		goto out;
	CHECK_EQ(c->nflows, 2);
	CHECK(&c->flows[0] == a && &c->flows[1] == b); /* file order */
	CHECK(a->listeners == NULL && a->clients == NULL && a->nclients == 0 &&
	      a->helo == NULL && a->sender_domains == NULL);
	CHECK_EQ(a->action, CFG_FLOW_ACCEPT);
	CHECK_EQ(a->decrypt_verify, 1);
	CHECK_EQ(a->remove_signature, -1);
	CHECK(a->harvest == 0 && a->harvest_on_failure == 0 &&
	      a->harvest_updated == 0);
	CHECK_EQ(b->action, CFG_FLOW_REJECT);
	CHECK_EQ(b->remove_signature, 0);
	CHECK_EQ(b->decrypt_verify, 1);
out:
	cfg_free(c);
}

/* A flow may name a listener defined further down the file. */
static void
listener_defined_below(void)
{
	static const char text[] =
	    "[flow f]\nlisteners = late\naction = reject\n"
	    "[listener late]\nlisten = 127.0.0.1:3\nrole = incoming\n";
	struct cfg *c = load(text);
	const struct cfg_flow *f = c ? cfg_flow(c, "f") : NULL;

	CHECK(f != NULL && f->listeners && f->listeners[1] == NULL);
	CHECK(f && f->listeners && strcmp(f->listeners[0], "late") == 0);
	cfg_free(c);
}

/* Lines 1-6 are LISTENERS: the errors count from there. */
static void
errors_name_the_line(void)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
	    {"[flow f]\naction = maybe\n",
	     ":8: \"maybe\": one of accept, relay, reject"},
	    {"[flow f]\nclients = 10.0.0.0/8\n", ": [flow f] needs action"},
	    {"[flow f]\naction = accept\nclients = 10.0.0.0/33\n",
	     ":9: clients: \"10.0.0.0/33\" is not a network"},
	    {"[flow f]\naction = accept\nclients = mx.example\n",
	     ":9: clients: \"mx.example\""},
	    {"[flow f]\naction = accept\nclients = 2001:db8::/129\n", ":9: "},
	    {"[flow f]\naction = accept\nclients = ,\n", ":9: clients: 1 to"},
	    {"[flow f]\naction = accept\nhelo = mx/example\n",
	     ":9: helo: \"mx/example\" is not a HELO pattern"},
	    {"[flow f]\naction = accept\nhelo =\n", ":9: helo: 1 to"},
	    {"[flow f]\naction = accept\nsender_domains = a@b.example\n",
	     ":9: sender_domains: \"a@b.example\" is not a domain"},
	    {"[flow f]\naction = accept\nsender_domains = *.b.example\n",
	     ":9: sender_domains: \"*.b.example\""},
	    {"[flow f]\naction = accept\nsender_domains = b..example\n",
	     ":9: "},
	    {"[flow f]\naction = accept\nsender_domains = b.example.\n",
	     ":9: "},
	    {"[flow f]\naction = accept\nsender_domains = .\n", ":9: "},
	    {"[flow f]\naction = accept\nsmime_decrypt_verify = yes\n",
	     ":9: \"yes\": on or off"},
	    {"[flow f]\naction = accept\nsignature = strip\n",
	     ":9: \"strip\": remove or keep"},
	    {"[flow f]\naction = accept\nharvest = 1\n", ":9: "},
	    {"[flow f]\naction = accept\nharvest_on_failure = yes\n", ":9: "},
	    {"[flow f]\naction = accept\nharvest_updated = maybe\n", ":9: "},
	    {"[flow f]\naction = accept\nbogus = 1\n",
	     ":9: unknown setting \"bogus\" in [flow f]"},
	    {"[flow f]\naction = accept\naction = relay\n",
	     ":9: \"action\" is set twice"},
	    {"[flow f]\naction = accept\n[flow f]\naction = relay\n",
	     ":9: [flow f] appears twice"},
	    {"[flow]\naction = accept\n", ":7: section [flow] needs a name"},
	    {"[flow a/b]\naction = accept\n", ":7: "},
	    /* unknown listener: the line of "listeners =" */
	    {"[flow f]\naction = accept\nlisteners = in, nowhere\n"
	     "clients = 10.0.0.1\n",
	     ":9: [flow f] names listener \"nowhere\", which has no "
	     "[listener nowhere] section"},
	    {"[flow f]\naction = accept\n[flow g]\naction = reject\n\n"
	     "listeners = IN\n",
	     ":12: [flow g] names listener \"IN\""},
	    {"[flow f]\nlisteners = in, x/y\naction = accept\n",
	     ":8: listeners: \"x/y\" is not a listener name"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		char buf[4096], err[512] = "";
		char *path;
		struct cfg *c = NULL;

		snprintf(buf, sizeof(buf), "%s%s", LISTENERS, cases[i].text);
		path = write_tmp(buf);
		if (cfg_load(path, &c, err, sizeof(err)) != SG_ERR_USAGE ||
		    c != NULL || strncmp(err, path, strlen(path)) != 0 ||
		    strstr(err + strlen(path), cases[i].want) !=
		        err + strlen(path)) {
			char msg[700];
			snprintf(msg, sizeof(msg), "case %zu: %s", i, err);
			unit_fail(__FILE__, __LINE__, msg);
		}
		cfg_free(c);
		unlink(path);
		free(path);
	}
}

/* 1000 flows load; the 1001st is refused at its own line. */
static void
limits(void)
{
	size_t cap = 1100 * 40 + 256, len;
	char *text = malloc(cap), *path, err[512] = "";
	struct cfg *c = NULL;

	if (text == NULL)
		abort();
	len = (size_t)snprintf(text, cap, "%s", LISTENERS);
	for (int i = 0; i < 1000; i++)
		len += (size_t)snprintf(text + len, cap - len,
		                        "[flow f%d]\naction = accept\n", i);
	path = write_tmp(text);
	CHECK_EQ(cfg_load(path, &c, err, sizeof(err)), SG_OK);
	CHECK(c != NULL && c->nflows == 1000);
	CHECK(c != NULL && cfg_flow(c, "f999") == &c->flows[999]);
	cfg_free(c);
	c = NULL;
	unlink(path);
	free(path);

	snprintf(text + len, cap - len, "[flow f1000]\naction = accept\n");
	path = write_tmp(text);
	CHECK_EQ(cfg_load(path, &c, err, sizeof(err)), SG_ERR_USAGE);
	CHECK(strstr(err, ":2007: too many flows") != NULL);
	unlink(path);
	free(path);
	free(text);
}

/* ---- matching ---- */

struct addr {
	union {
		struct sockaddr sa;
		struct sockaddr_in v4;
		struct sockaddr_in6 v6;
	} u;
};

/* "" or NULL: no address; else v4 or v6 text. */
static const struct sockaddr *
addr(struct addr *a, const char *text)
{
	memset(a, 0, sizeof(*a));
	if (text == NULL || *text == '\0')
		return NULL;
	if (inet_pton(AF_INET, text, &a->u.v4.sin_addr) == 1) {
		a->u.v4.sin_family = AF_INET;
		return &a->u.sa;
	}
	if (inet_pton(AF_INET6, text, &a->u.v6.sin6_addr) == 1) {
		a->u.v6.sin6_family = AF_INET6;
		return &a->u.sa;
	}
	abort();
}

struct match_case {
	const char *listener, *client, *helo, *domain;
	const char *want; /* the flow's name, or NULL */
};

static void
run_matches(const char *text, const struct match_case *cases, size_t n)
{
	struct cfg *c = load(text);

	if (c == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		struct addr a;
		const struct match_case *m = &cases[i];
		const struct cfg_flow *f = cfg_flow_match(
		    c, m->listener, addr(&a, m->client), m->helo, m->domain);

		if (m->want == NULL
		        ? f != NULL
		        : f == NULL || strcmp(f->name, m->want) != 0) {
			char msg[300];
			snprintf(msg, sizeof(msg),
			         "case %zu (%s %s %s %s): got %s", i,
			         m->listener ? m->listener : "-",
			         m->client ? m->client : "-",
			         m->helo ? m->helo : "-",
			         m->domain ? m->domain : "-",
			         f ? f->name : "no match");
			unit_fail(__FILE__, __LINE__, msg);
		}
	}
	cfg_free(c);
}

static void
match_networks(void)
{
	static const char text[] =
	    "[flow v4]\nclients = 192.0.2.0/24, 198.51.100.7\naction = relay\n"
	    "[flow odd]\nclients = 203.0.113.128/25\naction = relay\n"
	    "[flow v6]\nclients = 2001:db8::/32\naction = accept\n"
	    "[flow host6]\nclients = 2001:db9::1\naction = accept\n"
	    "[flow zero]\nclients = 0.0.0.0/0\naction = reject\n";
	static const struct match_case cases[] = {
	    {"in", "192.0.2.1", "h", "d.example", "v4"},
	    {"in", "192.0.2.255", "h", "d.example", "v4"},
	    {"in", "198.51.100.7", "h", "d.example", "v4"},
	    {"in", "198.51.100.8", "h", "d.example", "zero"},
	    {"in", "192.0.3.1", "h", "d.example", "zero"},
	    {"in", "203.0.113.128", "h", "d.example", "odd"},
	    {"in", "203.0.113.255", "h", "d.example", "odd"},
	    {"in", "203.0.113.127", "h", "d.example", "zero"},
	    /* IPv4-mapped IPv6 is the IPv4 client */
	    {"in", "::ffff:192.0.2.9", "h", "d.example", "v4"},
	    {"in", "::ffff:203.0.113.200", "h", "d.example", "odd"},
	    {"in", "::ffff:10.0.0.1", "h", "d.example", "zero"},
	    {"in", "2001:db8::1", "h", "d.example", "v6"},
	    {"in", "2001:db8:ffff::1", "h", "d.example", "v6"},
	    {"in", "2001:db9::1", "h", "d.example", "host6"},
	    {"in", "2001:db9::2", "h", "d.example", NULL},
	    {"in", "::1", "h", "d.example", NULL},
	    /* an IPv4 network never matches a v6 address, nor the reverse */
	    {"in", "::c000:201", "h", "d.example", NULL},
	    /* no address known: a clients list does not match */
	    {"in", NULL, "h", "d.example", NULL},
	};

	run_matches(text, cases, sizeof(cases) / sizeof(*cases));
}

static void
match_helo(void)
{
	static const char text[] =
	    "[flow glob]\nhelo = *.Partner.example\naction = relay\n"
	    "[flow exact]\nhelo = mx.other.example, mail*.third.example*\n"
	    "action = accept\n"
	    "[flow mid]\nhelo = a*b*c\naction = reject\n"
	    "[flow lit]\nhelo = [192.0.2.*]\naction = reject\n";
	static const struct match_case cases[] = {
	    {"in", NULL, "mx.partner.example", NULL, "glob"},
	    {"in", NULL, "MX.PARTNER.EXAMPLE", NULL, "glob"},
	    {"in", NULL, "a.b.partner.example", NULL, "glob"},
	    {"in", NULL, ".partner.example", NULL, "glob"},
	    {"in", NULL, "partner.example", NULL, NULL},
	    {"in", NULL, "mx.partner.example.evil", NULL, NULL},
	    {"in", NULL, "mx.partner-example", NULL, NULL},
	    {"in", NULL, "mx.other.example", NULL, "exact"},
	    {"in", NULL, "Mx.Other.Example", NULL, "exact"},
	    {"in", NULL, "x.mx.other.example", NULL, NULL},
	    {"in", NULL, "mx.other.example.", NULL, NULL},
	    {"in", NULL, "mail.third.example", NULL, "exact"},
	    {"in", NULL, "mail7.third.example.net", NULL, "exact"},
	    {"in", NULL, "abc", NULL, "mid"},
	    {"in", NULL, "aXbYc", NULL, "mid"},
	    {"in", NULL, "abcbc", NULL, "mid"},
	    {"in", NULL, "abcd", NULL, NULL},
	    {"in", NULL, "acb", NULL, NULL},
	    {"in", NULL, "[192.0.2.10]", NULL, "lit"},
	    {"in", NULL, "[192.0.3.10]", NULL, NULL},
	    /* no HELO known: a helo list does not match */
	    {"in", NULL, NULL, NULL, NULL},
	    {"in", NULL, "", NULL, NULL},
	};

	run_matches(text, cases, sizeof(cases) / sizeof(*cases));
}

static void
match_sender_domains(void)
{
	static const char text[] =
	    "[flow exact]\nsender_domains = Partner.example\naction = relay\n"
	    "[flow subs]\nsender_domains = .partner.example, .other.example\n"
	    "action = accept\n";
	static const struct match_case cases[] = {
	    {"in", NULL, NULL, "partner.example", "exact"},
	    {"in", NULL, NULL, "PARTNER.Example", "exact"},
	    {"in", NULL, NULL, "mx.partner.example", "subs"},
	    {"in", NULL, NULL, "a.b.Partner.Example", "subs"},
	    {"in", NULL, NULL, "other.example", NULL},
	    {"in", NULL, NULL, "x.other.example", "subs"},
	    {"in", NULL, NULL, "xpartner.example", NULL},
	    {"in", NULL, NULL, "partner.example.net", NULL},
	    {"in", NULL, NULL, "example", NULL},
	    /* the null sender has no domain */
	    {"in", NULL, NULL, NULL, NULL},
	    {"in", NULL, NULL, "", NULL},
	};

	run_matches(text, cases, sizeof(cases) / sizeof(*cases));
}

/* Every set criterion must match; unset ones match anything; the first
 * match in file order wins, whatever the action. */
static void
match_order_and_combination(void)
{
	static const char text[] =
	    "[flow blocked]\nsender_domains = spam.example\naction = reject\n"
	    "[flow partner-in2]\nlisteners = in2\nclients = 192.0.2.0/24\n"
	    "helo = *.partner.example\nsender_domains = partner.example\n"
	    "action = relay\n"
	    "[flow net]\nclients = 192.0.2.0/24\naction = accept\n"
	    "[flow only-in]\nlisteners = in\naction = accept\n"
	    "[flow never]\nclients = 192.0.2.0/24\naction = relay\n";
	static const struct match_case cases[] = {
	    /* the first flow wins even for a client a later one names */
	    {"in", "192.0.2.1", "mx.partner.example", "spam.example",
	     "blocked"},
	    {"in2", "192.0.2.1", "mx.partner.example", "partner.example",
	     "partner-in2"},
	    /* one criterion off: the next flow */
	    {"in", "192.0.2.1", "mx.partner.example", "partner.example", "net"},
	    {"in2", "192.0.3.1", "mx.partner.example", "partner.example", NULL},
	    {"in2", "192.0.2.1", "mx.other.example", "partner.example", "net"},
	    {"in2", "192.0.2.1", "mx.partner.example", "x.example", "net"},
	    {"in2", "192.0.2.1", "mx.partner.example", NULL, "net"},
	    {"in2", "192.0.2.1", NULL, "partner.example", "net"},
	    /* unset criteria match anything, unknown values too */
	    {"in", NULL, NULL, NULL, "only-in"},
	    {"in", "2001:db8::1", "h", "d.example", "only-in"},
	    {"in2", "10.0.0.1", "h", "d.example", NULL},
	    {"gone", "10.0.0.1", "h", "d.example", NULL},
	    {NULL, "10.0.0.1", "h", "d.example", NULL},
	};

	run_matches(text, cases, sizeof(cases) / sizeof(*cases));
}

static void
no_flows(void)
{
	struct cfg *c = load("");
	struct addr a;

	CHECK(c != NULL && c->nflows == 0);
	CHECK(c == NULL || cfg_flow_match(c, "in", addr(&a, "192.0.2.1"),
	                                  "mx.example", "example.com") == NULL);
	CHECK(c == NULL || cfg_flow(c, "any") == NULL);
	CHECK(cfg_flow_match(NULL, "in", NULL, NULL, NULL) == NULL);
	cfg_free(c);
}

static const struct unit_case cases[] = {
    {"parses_every_key", parses_every_key},
    {"defaults", defaults},
    {"listener_defined_below", listener_defined_below},
    {"errors_name_the_line", errors_name_the_line},
    {"limits", limits},
    {"match_networks", match_networks},
    {"match_helo", match_helo},
    {"match_sender_domains", match_sender_domains},
    {"match_order_and_combination", match_order_and_combination},
    {"no_flows", no_flows},
    {NULL, NULL},
};
const struct unit_suite suite_flow = {"flow", cases};
