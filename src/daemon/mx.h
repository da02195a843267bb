/*
 * mx.h - where mail for a domain goes: its MX hosts in preference order
 * and their addresses (RFC 5321 5.1), for `smarthost = mx` and a route's
 * `nexthop = mx`.
 *
 * What it trusts: nothing the DNS says beyond its syntax.  Counts are
 * bounded (MX_HOSTS_MAX hosts, MX_ADDRS_MAX addresses each); names are
 * expanded by libresolv and checked to be host names.  Addresses of the
 * MX hosts come from the DNS too (A and AAAA), not /etc/hosts, as for
 * any mail server.  What it can reach: the system's resolver, or one
 * server given as DNS (dns_server, IPv4 address and port).
 */
#ifndef SG_MX_H
#define SG_MX_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>

#include "smimegate.h"

#define MX_HOSTS_MAX 16
#define MX_ADDRS_MAX 8
#define MX_NAME_MAX  256

struct mx_host {
	char name[MX_NAME_MAX];
	unsigned pref;
	struct sockaddr_storage addr[MX_ADDRS_MAX];
	size_t naddrs;
};

struct mx_list {
	struct mx_host host[MX_HOSTS_MAX];
	size_t n;
};

/*
 * The hosts that take mail for DOMAIN, lowest preference first (equal
 * ones shuffled), each with its addresses; hosts without any are left
 * out.  With no MX record the domain itself is the host (the implicit
 * MX).  When SELF (our own name) is one of them, it and every host of
 * its preference or higher are left out (we are an MX: only better ones
 * may take it).  DNS: the system's resolver, or DNS when its family is
 * AF_INET.
 *
 * SG_OK; SG_ERR_NOT_FOUND (permanent: no such domain, a null MX (RFC
 * 7505), no host with an address) or SG_ERR_TEMP (the DNS did not
 * answer, or only our own name is left), with WHY.
 */
enum sg_status mx_lookup(const char *domain, const char *self,
                         const struct sockaddr_in *dns, struct mx_list *out,
                         char *why, size_t whylen);

#endif /* SG_MX_H */
