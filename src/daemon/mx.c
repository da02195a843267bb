/*
 * mx.c - MX lookup with libresolv (mx.h is the contract).
 *
 * res_nquery on a private resolver state per call (thread-safe; the
 * relay's workers each resolve on their own), answers parsed with
 * ns_initparse/ns_parserr.  A short timeout: a delivery that cannot
 * resolve is deferred and tried again, it does not hold a worker.
 */
#include "daemon/mx.h"

#include <arpa/inet.h>
#include "daemon/daemon_dl.h"
#include <ctype.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/rand.h>

#define ANSWER_MAX 65536

static int
host_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= MX_NAME_MAX)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.' &&
		    *s != '_')
			return 0;
	return 1;
}

/* A resolver state: the system's, or DNS alone. */
static int
state_open(res_state st, const struct sockaddr_in *dns)
{
	memset(st, 0, sizeof(*st));
	if (res_ninit(st) != 0)
		return -1;
	st->retrans = 3;
	st->retry = 2;
	if (dns != NULL && dns->sin_family == AF_INET) {
		st->nsaddr_list[0] = *dns;
		st->nscount = 1;
	}
	return 0;
}

/* The answer to NAME, TYPE: its length, or -1 with *H (h_errno). */
static int
query(res_state st, const char *name, int type, unsigned char *ans, int *h)
{
	int n = res_nquery(st, name, ns_c_in, type, ans, ANSWER_MAX);

	*h = n < 0 ? st->res_h_errno : 0;
	return n;
}

/* The A and AAAA records of HOST->name into HOST; -1 when the DNS did
 * not answer for both. */
static int
addresses(res_state st, struct mx_host *host, unsigned char *ans)
{
	static const int types[] = {ns_t_aaaa, ns_t_a};
	int temp = 0;

	for (size_t t = 0; t < 2; t++) {
		ns_msg msg;
		ns_rr rr;
		int h, n = query(st, host->name, types[t], ans, &h);

		if (n < 0) {
			temp += h == TRY_AGAIN;
			continue;
		}
		if (ns_initparse(ans, n, &msg) < 0)
			continue;
		for (int i = 0; i < ns_msg_count(msg, ns_s_an); i++) {
			struct sockaddr_storage *ss;

			if (ns_parserr(&msg, ns_s_an, i, &rr) < 0 ||
			    host->naddrs == MX_ADDRS_MAX)
				break;
			ss = &host->addr[host->naddrs];
			memset(ss, 0, sizeof(*ss));
			if (ns_rr_type(rr) == ns_t_a && ns_rr_rdlen(rr) == 4) {
				struct sockaddr_in *in = (void *)ss;
				in->sin_family = AF_INET;
				memcpy(&in->sin_addr, ns_rr_rdata(rr), 4);
				host->naddrs++;
			} else if (ns_rr_type(rr) == ns_t_aaaa &&
			           ns_rr_rdlen(rr) == 16) {
				struct sockaddr_in6 *in6 = (void *)ss;
				in6->sin6_family = AF_INET6;
				memcpy(&in6->sin6_addr, ns_rr_rdata(rr), 16);
				host->naddrs++;
			}
		}
	}
	return temp == 2 ? -1 : 0;
}

static int
by_pref(const void *a, const void *b)
{
	const struct mx_host *x = a, *y = b;
	return x->pref < y->pref ? -1 : x->pref > y->pref;
}

enum sg_status
mx_lookup(const char *domain, const char *self, const struct sockaddr_in *dns,
          struct mx_list *out, char *why, size_t whylen)
{
	struct __res_state st;
	unsigned char *ans = malloc(ANSWER_MAX);
	enum sg_status rc = SG_ERR_TEMP;
	ns_msg msg;
	ns_rr rr;
	int h, n, temp = 0;
	size_t kept;

	memset(out, 0, sizeof(*out));
	if (ans == NULL) {
		snprintf(why, whylen, "out of memory");
		return SG_ERR_TEMP;
	}
	if (!host_name_ok(domain) || domain[0] == '.') {
		snprintf(why, whylen, "\"%s\" is not a domain name", domain);
		free(ans);
		return SG_ERR_NOT_FOUND;
	}
	if (state_open(&st, dns) != 0) {
		snprintf(why, whylen, "cannot set up the resolver");
		free(ans);
		return SG_ERR_TEMP;
	}
	n = query(&st, domain, ns_t_mx, ans, &h);
	if (n < 0 && h == HOST_NOT_FOUND) {
		snprintf(why, whylen, "no such domain %s (MX lookup)", domain);
		rc = SG_ERR_NOT_FOUND;
		goto out;
	}
	if (n < 0 && h != NO_DATA) {
		snprintf(why, whylen, "MX lookup of %s: %s", domain,
		         h == TRY_AGAIN ? "no answer from the DNS"
		                        : "the DNS failed");
		goto out;
	}
	if (n >= 0 && ns_initparse(ans, n, &msg) == 0) {
		for (int i = 0; i < ns_msg_count(msg, ns_s_an); i++) {
			struct mx_host *m = &out->host[out->n];
			const unsigned char *rd;

			if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
				break;
			if (ns_rr_type(rr) != ns_t_mx || ns_rr_rdlen(rr) < 3)
				continue;
			if (out->n == MX_HOSTS_MAX)
				break;
			rd = ns_rr_rdata(rr);
			m->pref = ns_get16(rd);
			if (ns_name_uncompress(ns_msg_base(msg),
			                       ns_msg_end(msg), rd + 2, m->name,
			                       sizeof(m->name)) < 0)
				continue;
			if (strcmp(m->name, ".") == 0 || m->name[0] == '\0') {
				/* RFC 7505: the domain takes no mail */
				snprintf(why, whylen,
				         "%s accepts no mail (null MX)",
				         domain);
				rc = SG_ERR_NOT_FOUND;
				goto out;
			}
			if (host_name_ok(m->name))
				out->n++;
		}
	}
	if (out->n == 0) { /* the implicit MX */
		snprintf(out->host[0].name, MX_NAME_MAX, "%s", domain);
		out->n = 1;
	}
	/* equal preferences in random order (RFC 5321 5.1), then sorted */
	for (size_t i = out->n; i > 1; i--) {
		unsigned r = 0;
		(void)RAND_bytes((unsigned char *)&r, sizeof(r));
		struct mx_host tmp = out->host[i - 1];
		out->host[i - 1] = out->host[r % i];
		out->host[r % i] = tmp;
	}
	qsort(out->host, out->n, sizeof(out->host[0]), by_pref);
	for (size_t i = 0; i < out->n; i++)
		if (self != NULL && strcasecmp(out->host[i].name, self) == 0) {
			unsigned cut = out->host[i].pref;
			size_t j = 0;
			while (j < out->n && out->host[j].pref < cut)
				j++;
			out->n = j;
			if (j == 0) {
				snprintf(why, whylen,
				         "mail for %s loops back to myself (%s "
				         "is its best MX)",
				         domain, self);
				goto out;
			}
			break;
		}
	kept = 0;
	for (size_t i = 0; i < out->n; i++) {
		out->host[i].naddrs = 0;
		if (addresses(&st, &out->host[i], ans) < 0)
			temp++;
		if (out->host[i].naddrs > 0)
			out->host[kept++] = out->host[i];
	}
	out->n = kept;
	if (kept > 0)
		rc = SG_OK;
	else if (temp > 0)
		snprintf(why, whylen,
		         "address lookup for the MX of %s: no "
		         "answer from the DNS",
		         domain);
	else {
		snprintf(why, whylen, "no MX host of %s has an address",
		         domain);
		rc = SG_ERR_NOT_FOUND;
	}
out:
	res_nclose(&st);
	free(ans);
	return rc;
}
