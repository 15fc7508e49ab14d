/*
 * test_netcheck.c - which addresses a webhook may reach, webhook URL
 * checks and receiver endpoints (src/netcheck.c).
 *
 * The address table walks both sides of every blocked range's edges.
 * URL checks use IP literals and "localhost" (/etc/hosts), so they need
 * no network.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/netcheck.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* An IPv4 or IPv6 text address as a sockaddr. */
static void to_sockaddr(const char *text, struct sockaddr_storage *ss)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, text, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		return;
	}
	if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		return;
	}
	fail_msg("bad test address %s", text);
}

static const struct {
	const char *addr;
	int is_public;
} addr_cases[] = {
	/* 0.0.0.0/8 */
	{"0.0.0.0", 0}, {"0.255.255.255", 0}, {"1.0.0.0", 1},
	/* 10/8 */
	{"9.255.255.255", 1}, {"10.0.0.0", 0}, {"10.255.255.255", 0},
	{"11.0.0.0", 1},
	/* 100.64/10 */
	{"100.63.255.255", 1}, {"100.64.0.0", 0}, {"100.127.255.255", 0},
	{"100.128.0.0", 1},
	/* 127/8 */
	{"126.255.255.255", 1}, {"127.0.0.0", 0}, {"127.0.0.1", 0},
	{"127.255.255.255", 0}, {"128.0.0.0", 1},
	/* 169.254/16 */
	{"169.253.255.255", 1}, {"169.254.0.0", 0},
	{"169.254.169.254", 0}, {"169.254.255.255", 0}, {"169.255.0.0", 1},
	/* 172.16/12 */
	{"172.15.255.255", 1}, {"172.16.0.0", 0}, {"172.31.255.255", 0},
	{"172.32.0.0", 1},
	/* 192.0.0/24, 192.0.2/24 */
	{"191.255.255.255", 1}, {"192.0.0.0", 0}, {"192.0.0.255", 0},
	{"192.0.1.0", 1}, {"192.0.1.255", 1}, {"192.0.2.0", 0},
	{"192.0.2.255", 0}, {"192.0.3.0", 1},
	/* 192.88.99/24 */
	{"192.88.98.255", 1}, {"192.88.99.0", 0}, {"192.88.99.255", 0},
	{"192.88.100.0", 1},
	/* 192.168/16 */
	{"192.167.255.255", 1}, {"192.168.0.0", 0}, {"192.168.255.255", 0},
	{"192.169.0.0", 1},
	/* 198.18/15 */
	{"198.17.255.255", 1}, {"198.18.0.0", 0}, {"198.19.255.255", 0},
	{"198.20.0.0", 1},
	/* 198.51.100/24 */
	{"198.51.99.255", 1}, {"198.51.100.0", 0}, {"198.51.100.255", 0},
	{"198.51.101.0", 1},
	/* 203.0.113/24 */
	{"203.0.112.255", 1}, {"203.0.113.0", 0}, {"203.0.113.255", 0},
	{"203.0.114.0", 1},
	/* 224/4, 240/4 */
	{"223.255.255.255", 1}, {"224.0.0.0", 0}, {"239.255.255.255", 0},
	{"240.0.0.0", 0}, {"255.255.255.255", 0},
	/* public IPv4 */
	{"8.8.8.8", 1}, {"1.1.1.1", 1}, {"93.184.216.34", 1},

	/* ::/128, ::1/128 */
	{"::", 0}, {"::1", 0},
	/* fe80::/10, fec0::/10 */
	{"fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1}, {"fe80::", 0},
	{"fe80::1", 0}, {"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0},
	{"fec0::", 0}, {"feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0},
	/* fc00::/7 */
	{"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1}, {"fc00::", 0},
	{"fd12:3456::1", 0}, {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0},
	/* ff00::/8 */
	{"ff00::", 0}, {"ff02::1", 0},
	/* 2001:db8::/32 */
	{"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", 1}, {"2001:db8::", 0},
	{"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 0}, {"2001:db9::", 1},
	/* 100::/64 */
	{"ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1}, {"100::", 0},
	{"100::ffff:ffff:ffff:ffff", 0}, {"100:0:0:1::", 1},
	/* IPv4-mapped ::ffff:0:0/96 */
	{"::ffff:127.0.0.1", 0}, {"::ffff:10.1.2.3", 0},
	{"::ffff:169.254.169.254", 0}, {"::ffff:8.8.8.8", 1},
	/* IPv4-compatible ::/96 */
	{"::127.0.0.1", 0}, {"::192.168.1.1", 0}, {"::8.8.8.8", 1},
	/* NAT64 64:ff9b::/96 */
	{"64:ff9b::127.0.0.1", 0}, {"64:ff9b::10.0.0.1", 0},
	{"64:ff9b::8.8.8.8", 1}, {"64:ff9b:1::8.8.8.8", 1},
	/* 6to4 2002::/16 carries the IPv4 address in bits 16..47 */
	{"2002:7f00:1::", 0}, {"2002:a00:1::1", 0},
	{"2002:c0a8:101::1", 0}, {"2002:808:808::1", 1},
	/* public IPv6 */
	{"2606:4700::1111", 1}, {"2001:4860:4860::8888", 1},
	{"2a00:1450:4001::1", 1},
};

static void test_addr_table(void **state)
{
	struct sockaddr_storage ss;
	size_t i;
	int got;

	(void)state;
	for (i = 0; i < N(addr_cases); i++) {
		to_sockaddr(addr_cases[i].addr, &ss);
		got = kiln_addr_is_public((struct sockaddr *)&ss);
		if (got != addr_cases[i].is_public)
			fail_msg("%s: is_public %d, want %d",
				 addr_cases[i].addr, got,
				 addr_cases[i].is_public);
	}
}

static void test_addr_other_family(void **state)
{
	struct sockaddr_storage ss;
	char out[INET6_ADDRSTRLEN];

	(void)state;
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	assert_int_equal(kiln_addr_is_public((struct sockaddr *)&ss), 0);
	kiln_addr_format((struct sockaddr *)&ss, out, sizeof(out));
	assert_string_equal(out, "?");
}

static void test_addr_format(void **state)
{
	static const char *const texts[] = {
		"10.0.0.1", "255.255.255.255", "::1", "2606:4700::1111",
		"::ffff:127.0.0.1",
	};
	struct sockaddr_storage ss;
	char out[INET6_ADDRSTRLEN];
	size_t i;

	(void)state;
	for (i = 0; i < N(texts); i++) {
		to_sockaddr(texts[i], &ss);
		kiln_addr_format((struct sockaddr *)&ss, out, sizeof(out));
		assert_string_equal(out, texts[i]);
	}
}

/* ------------------------------------------------------------------ */
/* URLs                                                                */
/* ------------------------------------------------------------------ */

static const struct {
	const char *url;
	int allow_private;
	const char *reason; /* a phrase of the refusal; NULL: accepted */
} url_cases[] = {
	{"ftp://example.com/x", 0, "http or https"},
	{"ftp://example.com/x", 1, "http or https"},
	{"file:///etc/passwd", 1, "not a valid URL"},
	{"not a url", 0, "not a valid URL"},
	{"not a url", 1, "not a valid URL"},
	{"", 1, "not a valid URL"},
	{"http://", 1, "not a valid URL"},
	{"http://127.0.0.1:9/x", 0, "resolves to 127.0.0.1"},
	{"http://127.0.0.1:9/x", 1, NULL},
	{"http://[::1]/", 0, "resolves to ::1"},
	{"http://[::1]/", 1, NULL},
	{"http://[::ffff:127.0.0.1]/", 0, "resolves to ::ffff:127.0.0.1"},
	{"http://[fe80::1%25eth0]/", 0, "resolves to fe80::1"},
	/* RFC 6761 names are loopback without asking the resolver, also in
	 * their absolute form, which /etc/hosts does not list. */
	{"http://localhost/", 0, "host localhost is a loopback"},
	{"http://LocalHost./x", 0, "host LocalHost is a loopback"},
	{"http://api.localhost:8080/", 0, "host api.localhost is a loopback"},
	{"http://LOCALHOST:8080/hook", 0, "host LOCALHOST is a loopback"},
	{"http://localhost/", 1, NULL},
	{"http://10.1.2.3/", 0, "resolves to 10.1.2.3"},
	{"https://169.254.169.254/latest/meta-data", 0,
	 "resolves to 169.254.169.254"},
	{"http://0x7f000001/", 0, "resolves to 127.0.0.1"},
	{"http://2130706433/", 0, "resolves to 127.0.0.1"},
	{"http://8.8.8.8/", 0, NULL},
	{"HTTPS://8.8.8.8:8443/a?b=c", 0, NULL},
	{"http://[2606:4700::1111]/", 0, NULL},
	/* Does not resolve: accepted, checked again when connecting. */
	{"https://kiln-test.invalid/hook", 0, NULL},
};

static void test_url_check(void **state)
{
	struct kiln_err err;
	enum kiln_rc rc;
	size_t i;

	(void)state;
	for (i = 0; i < N(url_cases); i++) {
		kiln_err_clear(&err);
		rc = kiln_webhook_url_check(url_cases[i].url,
					    url_cases[i].allow_private, &err);
		if (url_cases[i].reason == NULL) {
			if (rc != KILN_OK)
				fail_msg("%s (allow_private %d): refused: %s",
					 url_cases[i].url,
					 url_cases[i].allow_private, err.msg);
			continue;
		}
		if (rc != KILN_EINVAL ||
		    strstr(err.msg, url_cases[i].reason) == NULL)
			fail_msg("%s (allow_private %d): rc %d \"%s\", want"
				 " \"%s\"",
				 url_cases[i].url, url_cases[i].allow_private,
				 rc, err.msg, url_cases[i].reason);
		assert_string_equal(err.field, "webhook_url");
	}
}

static void test_url_check_private_message(void **state)
{
	struct kiln_err err = {0};

	(void)state;
	assert_int_equal(
		kiln_webhook_url_check("http://localhost/", 0, &err),
		KILN_EINVAL);
	assert_non_null(strstr(err.msg, "loopback or private address"));
	assert_non_null(strstr(err.msg, "webhooks.allow_private_networks"));
}

static void test_url_check_length(void **state)
{
	char url[2100];
	struct kiln_err err = {0};
	size_t prefix = strlen("http://8.8.8.8/");

	(void)state;
	memcpy(url, "http://8.8.8.8/", prefix);
	memset(url + prefix, 'a', 2048 - prefix);
	url[2048] = '\0';
	assert_int_equal(kiln_webhook_url_check(url, 0, &err), KILN_OK);
	url[2048] = 'a';
	url[2049] = '\0';
	assert_int_equal(kiln_webhook_url_check(url, 0, &err), KILN_EINVAL);
	assert_string_equal(err.field, "webhook_url");
	assert_non_null(strstr(err.msg, "2048"));
}

static void test_url_endpoint(void **state)
{
	static const struct {
		const char *url;
		const char *endpoint; /* NULL: does not parse */
	} cases[] = {
		{"HTTP://Example.COM/a", "http://example.com:80"},
		{"https://x.io:8443/p?q", "https://x.io:8443"},
		{"https://x.io/p", "https://x.io:443"},
		{"http://user:pw@x.io:81/#f", "http://x.io:81"},
		{"http://[::1]:8080/hook", "http://[::1]:8080"},
		{"https://[2606:4700::1111]/", "https://[2606:4700::1111]:443"},
		{"http://[FE80::AB]/", "http://[fe80::ab]:80"},
		{"not a url", NULL},
		{"", NULL},
	};
	char *got;
	size_t i;

	(void)state;
	for (i = 0; i < N(cases); i++) {
		got = kiln_url_endpoint(cases[i].url);
		if (cases[i].endpoint == NULL) {
			assert_null(got);
			continue;
		}
		if (got == NULL || strcmp(got, cases[i].endpoint) != 0)
			fail_msg("%s: endpoint %s, want %s", cases[i].url,
				 got ? got : "NULL", cases[i].endpoint);
		free(got);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_table),
		cmocka_unit_test(test_addr_other_family),
		cmocka_unit_test(test_addr_format),
		cmocka_unit_test(test_url_check),
		cmocka_unit_test(test_url_check_private_message),
		cmocka_unit_test(test_url_check_length),
		cmocka_unit_test(test_url_endpoint),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
