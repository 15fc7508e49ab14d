/*
 * netcheck.h - keeping webhooks off private networks (SSRF protection,
 * after Svix's blocklist), and naming a receiver's endpoint.
 */
#ifndef KILN_NETCHECK_H
#define KILN_NETCHECK_H

#include <stddef.h>
#include <sys/socket.h>

#include "kiln/common.h"

/*
 * 1 if addr is a public unicast address a webhook may connect to; 0 for:
 * IPv4 0.0.0.0/8, 10/8, 100.64/10, 127/8, 169.254/16, 172.16/12,
 * 192.0.0/24, 192.0.2/24, 192.88.99/24, 192.168/16, 198.18/15,
 * 198.51.100/24, 203.0.113/24, 224/4 (multicast), 240/4 (reserved, incl.
 * 255.255.255.255); IPv6 ::/128, ::1/128, fe80::/10, fec0::/10, fc00::/7,
 * ff00::/8, 2001:db8::/32, 100::/64.  IPv4-mapped (::ffff:0:0/96),
 * IPv4-compatible (::/96), NAT64 (64:ff9b::/96) and 6to4 (2002::/16)
 * addresses get the verdict on the IPv4 address they carry.  Any other
 * family: 0.
 */
int kiln_addr_is_public(const struct sockaddr *addr);

/* Writes the numeric form of addr ("10.0.0.1", "::1") into out, which has
 * room for size bytes (INET6_ADDRSTRLEN is enough); "?" for a family
 * other than AF_INET and AF_INET6. */
void kiln_addr_format(const struct sockaddr *addr, char *out, size_t size);

/*
 * Checks a webhook target URL: it must parse (libcurl's URL API), have
 * scheme http or https and a host, and be at most 2048 bytes.  Unless
 * allow_private, the host (an IP literal directly, a name through
 * getaddrinfo) must give only public addresses.  A name that does not
 * resolve passes: it is checked again when connecting.  Every failure is
 * KILN_EINVAL with err->field "webhook_url".  May block on DNS.
 */
enum kiln_rc kiln_webhook_url_check(const char *url, int allow_private,
				    struct kiln_err *err) KILN_WARN_UNUSED;

/*
 * The endpoint of url, "scheme://host:port" with scheme and host in lower
 * case and the scheme's default port filled in (80, 443), so deliveries
 * to one receiver can be limited together.  An IPv6 host keeps its
 * brackets.  Returns a malloc'd string the caller frees; NULL if url does
 * not parse or on failure.
 */
char *kiln_url_endpoint(const char *url);

#endif
