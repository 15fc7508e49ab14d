/*
 * netcheck.c - which addresses a webhook may reach, and receiver endpoints.
 *
 * A webhook URL is chosen by the API's callers, so without a check it
 * would let them make kilnd send requests into its own network (SSRF).
 * The blocklist follows Svix's: loopback, private, link-local, shared,
 * documentation, benchmarking, multicast and reserved ranges.  IPv6 forms
 * that carry an IPv4 address (mapped, compatible, NAT64, 6to4) are judged
 * by that address, or "::ffff:127.0.0.1" would walk around the list.
 *
 * Checking at submission time cannot stop a name from resolving elsewhere
 * later (DNS rebinding); the delivery side checks the address it actually
 * connects to with kiln_addr_is_public as well.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "kiln/netcheck.h"

#define URL_MAX 2048
#define URL_FIELD "webhook_url"

#define V4(a, b, c, d)                                                    \
	((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | \
	 (uint32_t)(d))

struct v4_net {
	uint32_t net;
	unsigned bits;
};

static const struct v4_net v4_blocked[] = {
	{V4(0, 0, 0, 0), 8},       /* "this network" */
	{V4(10, 0, 0, 0), 8},      /* private */
	{V4(100, 64, 0, 0), 10},   /* carrier-grade NAT */
	{V4(127, 0, 0, 0), 8},     /* loopback */
	{V4(169, 254, 0, 0), 16},  /* link-local, cloud metadata */
	{V4(172, 16, 0, 0), 12},   /* private */
	{V4(192, 0, 0, 0), 24},    /* IETF protocol assignments */
	{V4(192, 0, 2, 0), 24},    /* TEST-NET-1 */
	{V4(192, 88, 99, 0), 24},  /* 6to4 relay anycast */
	{V4(192, 168, 0, 0), 16},  /* private */
	{V4(198, 18, 0, 0), 15},   /* benchmarking */
	{V4(198, 51, 100, 0), 24}, /* TEST-NET-2 */
	{V4(203, 0, 113, 0), 24},  /* TEST-NET-3 */
	{V4(224, 0, 0, 0), 4},     /* multicast */
	{V4(240, 0, 0, 0), 4},     /* reserved, broadcast */
};

struct v6_net {
	unsigned char prefix[16];
	unsigned bits;
};

static const struct v6_net v6_blocked[] = {
	{{0}, 128},                                     /* unspecified */
	{{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128}, /* loopback */
	{{0xfe, 0x80}, 10},                             /* link-local */
	{{0xfe, 0xc0}, 10},                             /* site-local */
	{{0xfc}, 7},                                    /* unique local */
	{{0xff}, 8},                                    /* multicast */
	{{0x20, 0x01, 0x0d, 0xb8}, 32},                 /* documentation */
	{{0x01, 0x00}, 64},                             /* discard-only */
};

/* IPv6 ranges that carry an IPv4 address at byte v4_at. */
struct v6_embedding {
	struct v6_net net;
	unsigned v4_at;
};

static const struct v6_embedding v6_embeddings[] = {
	{{{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96}, 12}, /* mapped */
	{{{0}, 96}, 12},                           /* compatible */
	{{{0x00, 0x64, 0xff, 0x9b}, 96}, 12},      /* NAT64 */
	{{{0x20, 0x02}, 16}, 2},                   /* 6to4 */
};

static int v4_is_public(uint32_t a)
{
	size_t i;
	uint32_t mask;

	for (i = 0; i < sizeof(v4_blocked) / sizeof(v4_blocked[0]); i++) {
		mask = UINT32_MAX << (32 - v4_blocked[i].bits);
		if ((a & mask) == v4_blocked[i].net)
			return 0;
	}
	return 1;
}

static int v6_in(const unsigned char *a, const struct v6_net *net)
{
	unsigned full = net->bits / 8, rest = net->bits % 8;
	unsigned char mask;

	if (memcmp(a, net->prefix, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (unsigned char)(0xff << (8 - rest));
	return (a[full] & mask) == (net->prefix[full] & mask);
}

static int v6_is_public(const unsigned char *a)
{
	const struct v6_embedding *e;
	size_t i;

	for (i = 0; i < sizeof(v6_blocked) / sizeof(v6_blocked[0]); i++)
		if (v6_in(a, &v6_blocked[i]))
			return 0;
	for (i = 0; i < sizeof(v6_embeddings) / sizeof(v6_embeddings[0]);
	     i++) {
		e = &v6_embeddings[i];
		if (v6_in(a, &e->net))
			return v4_is_public(V4(a[e->v4_at], a[e->v4_at + 1],
					       a[e->v4_at + 2],
					       a[e->v4_at + 3]));
	}
	return 1;
}

int kiln_addr_is_public(const struct sockaddr *addr)
{
	const struct sockaddr_in *in4;
	const struct sockaddr_in6 *in6;

	switch (addr->sa_family) {
	case AF_INET:
		in4 = (const struct sockaddr_in *)(const void *)addr;
		return v4_is_public(ntohl(in4->sin_addr.s_addr));
	case AF_INET6:
		in6 = (const struct sockaddr_in6 *)(const void *)addr;
		return v6_is_public(in6->sin6_addr.s6_addr);
	default:
		return 0;
	}
}

void kiln_addr_format(const struct sockaddr *addr, char *out, size_t size)
{
	const void *bytes = NULL;

	if (addr->sa_family == AF_INET)
		bytes = &((const struct sockaddr_in *)(const void *)addr)
				 ->sin_addr;
	else if (addr->sa_family == AF_INET6)
		bytes = &((const struct sockaddr_in6 *)(const void *)addr)
				 ->sin6_addr;
	if (bytes == NULL ||
	    inet_ntop(addr->sa_family, bytes, out, (socklen_t)size) == NULL)
		kiln_strlcpy(out, "?", size);
}

/* ------------------------------------------------------------------ */
/* URLs                                                                */
/* ------------------------------------------------------------------ */

/* Parses url and takes its scheme and host (curl_free them).  On any
 * failure returns that CURLUcode and leaves nothing to free. */
static CURLUcode parse_url(const char *url, CURLU *u, char **scheme,
			   char **host)
{
	CURLUcode uc;

	*scheme = NULL;
	*host = NULL;
	uc = curl_url_set(u, CURLUPART_URL, url, 0);
	if (uc == CURLUE_OK)
		uc = curl_url_get(u, CURLUPART_SCHEME, scheme, 0);
	if (uc == CURLUE_OK)
		uc = curl_url_get(u, CURLUPART_HOST, host, 0);
	if (uc == CURLUE_OK && (*host)[0] == '\0')
		uc = CURLUE_NO_HOST;
	if (uc != CURLUE_OK) {
		curl_free(*scheme);
		curl_free(*host);
		*scheme = NULL;
		*host = NULL;
	}
	return uc;
}

/* Refuses host if any address it stands for is not public.  A literal is
 * read as one (AI_NUMERICHOST, no DNS); a name is resolved. */
static enum kiln_rc check_host(const char *host, struct kiln_err *err)
{
	struct addrinfo hints, *res = NULL, *ai;
	char name[URL_MAX + 1], shown[INET6_ADDRSTRLEN];
	size_t len = strlen(host);
	enum kiln_rc rc = KILN_OK;
	int gai;

	/* curl gives IPv6 literals in brackets; getaddrinfo wants none. */
	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		host++;
		len -= 2;
	}
	if (len >= sizeof(name))
		return kiln_err_set(err, KILN_EINVAL, URL_FIELD,
				    "webhook_url host is too long");
	/* "localhost." is "localhost": the resolver may not know the
	 * absolute form, and must not let it through. */
	while (len > 1 && host[len - 1] == '.')
		len--;
	memcpy(name, host, len);
	name[len] = '\0';
	/* RFC 6761: localhost and *.localhost are loopback, whatever DNS
	 * says (and without asking it). */
	if (strcasecmp(name, "localhost") == 0 ||
	    (len > 10 && strcasecmp(name + len - 10, ".localhost") == 0))
		return kiln_err_set(err, KILN_EINVAL, URL_FIELD,
				    "webhook_url host %s is a loopback or"
				    " private address; set"
				    " webhooks.allow_private_networks to allow"
				    " it",
				    name);

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST;
	gai = getaddrinfo(name, NULL, &hints, &res);
	if (gai == EAI_NONAME) {
		hints.ai_flags = 0;
		gai = getaddrinfo(name, NULL, &hints, &res);
	}
	if (gai != 0)
		return KILN_OK; /* checked again when connecting */
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (kiln_addr_is_public(ai->ai_addr))
			continue;
		kiln_addr_format(ai->ai_addr, shown, sizeof(shown));
		rc = kiln_err_set(err, KILN_EINVAL, URL_FIELD,
				  "webhook_url resolves to %s, a loopback or"
				  " private address; set"
				  " webhooks.allow_private_networks to allow"
				  " it",
				  shown);
		break;
	}
	freeaddrinfo(res);
	return rc;
}

enum kiln_rc kiln_webhook_url_check(const char *url, int allow_private,
				    struct kiln_err *err)
{
	char *scheme = NULL, *host = NULL;
	enum kiln_rc rc;
	CURLUcode uc;
	CURLU *u;

	if (strlen(url) > URL_MAX)
		return kiln_err_set(err, KILN_EINVAL, URL_FIELD,
				    "webhook_url is longer than %d bytes",
				    URL_MAX);
	u = curl_url();
	if (u == NULL)
		return kiln_err_set(err, KILN_ENOMEM, URL_FIELD,
				    "out of memory");
	uc = parse_url(url, u, &scheme, &host);
	if (uc != CURLUE_OK) {
		rc = kiln_err_set(err, KILN_EINVAL, URL_FIELD,
				  "webhook_url is not a valid URL: %s",
				  curl_url_strerror(uc));
		goto out;
	}
	if (strcasecmp(scheme, "http") != 0 &&
	    strcasecmp(scheme, "https") != 0) {
		rc = kiln_err_set(err, KILN_EINVAL, URL_FIELD,
				  "webhook_url must be an http or https URL");
		goto out;
	}
	rc = allow_private ? KILN_OK : check_host(host, err);
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return rc;
}

static void lower_case(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

char *kiln_url_endpoint(const char *url)
{
	char *scheme = NULL, *host = NULL, *port = NULL, *endpoint = NULL;
	size_t size;
	CURLU *u;

	u = curl_url();
	if (u == NULL)
		return NULL;
	if (parse_url(url, u, &scheme, &host) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) !=
		    CURLUE_OK)
		goto out;
	lower_case(scheme);
	lower_case(host);
	size = strlen(scheme) + strlen(host) + strlen(port) + sizeof("://:");
	endpoint = malloc(size);
	if (endpoint != NULL)
		snprintf(endpoint, size, "%s://%s:%s", scheme, host, port);
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return endpoint;
}
