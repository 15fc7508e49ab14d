/*
 * test_dag.c - table-driven tests of the step graph (src/dag.c).
 *
 * Graphs are written as short strings, "a; b:a; c:a,b" meaning step a,
 * step b depending on a, step c depending on a and b, so that each case
 * fits on a line or two.  build_graph() turns one into the borrowed
 * kiln_dag_node array the functions take.  Big graphs (more nodes than
 * dag.c's linear-scan threshold) are generated, so both lookup paths and
 * the iterative DFS on a deep chain get exercised.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/dag.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_NODES 64
#define MAX_DEPS 8

/* ------------------------------------------------------------------ */
/* Graph building                                                      */
/* ------------------------------------------------------------------ */

struct graph {
	struct kiln_dag_node *nodes;
	char **ids;
	char ***deps;
	size_t n;
};

static char *dup_range(const char *s, size_t len)
{
	char *out = malloc(len + 1);

	assert_non_null(out);
	memcpy(out, s, len);
	out[len] = '\0';
	return out;
}

static void skip_spaces(const char **p)
{
	while (**p == ' ')
		(*p)++;
}

/* Reads an id up to one of the stop characters (or the end). */
static char *read_id(const char **p, const char *stop)
{
	const char *start;
	size_t len;

	skip_spaces(p);
	start = *p;
	while (**p != '\0' && strchr(stop, **p) == NULL)
		(*p)++;
	len = (size_t)(*p - start);
	while (len > 0 && start[len - 1] == ' ')
		len--;
	return dup_range(start, len);
}

static void graph_alloc(struct graph *g, size_t n)
{
	g->n = n;
	g->nodes = calloc(n + 1, sizeof(*g->nodes));
	g->ids = calloc(n + 1, sizeof(*g->ids));
	g->deps = calloc(n + 1, sizeof(*g->deps));
	assert_non_null(g->nodes);
	assert_non_null(g->ids);
	assert_non_null(g->deps);
}

static void graph_set(struct graph *g, size_t i, char *id, char **deps,
		      size_t n_deps)
{
	g->ids[i] = id;
	g->deps[i] = deps;
	g->nodes[i].id = id;
	g->nodes[i].deps = (const char *const *)deps;
	g->nodes[i].n_deps = n_deps;
}

/* "a; b:a; c:a,b" -> three nodes.  "" is the empty graph. */
static void build_graph(struct graph *g, const char *spec)
{
	const char *p = spec;
	size_t n = 0;

	graph_alloc(g, MAX_NODES);
	skip_spaces(&p);
	while (*p != '\0') {
		char **deps = calloc(MAX_DEPS, sizeof(*deps));
		size_t n_deps = 0;
		char *id = read_id(&p, ":;");

		assert_non_null(deps);
		assert_true(n < MAX_NODES);
		if (*p == ':') {
			p++;
			for (;;) {
				assert_true(n_deps < MAX_DEPS);
				deps[n_deps++] = read_id(&p, ",;");
				if (*p != ',')
					break;
				p++;
			}
		}
		graph_set(g, n++, id, deps, n_deps);
		if (*p == ';')
			p++;
		skip_spaces(&p);
	}
	g->n = n;
}

static void graph_free(struct graph *g)
{
	size_t i, j;

	for (i = 0; g->nodes != NULL && g->nodes[i].id != NULL; i++) {
		for (j = 0; j < g->nodes[i].n_deps; j++)
			free(g->deps[i][j]);
		free(g->deps[i]);
		free(g->ids[i]);
	}
	free(g->nodes);
	free(g->ids);
	free(g->deps);
	memset(g, 0, sizeof(*g));
}

static char *id_of(const char *prefix, size_t i)
{
	char buf[128];

	snprintf(buf, sizeof(buf), "%s%zu", prefix, i);
	return dup_range(buf, strlen(buf));
}

/*
 * A chain of n steps s0 .. s(n-1).  Forward: each step depends on the one
 * before it; otherwise on the one after it (so the DFS from s0 runs the
 * whole length before it can finish anything).
 */
static void build_chain(struct graph *g, size_t n, int is_forward)
{
	size_t i;

	graph_alloc(g, n);
	for (i = 0; i < n; i++) {
		char **deps = calloc(1, sizeof(*deps));
		size_t n_deps = 0;

		assert_non_null(deps);
		if (is_forward && i > 0)
			deps[n_deps++] = id_of("s", i - 1);
		else if (!is_forward && i + 1 < n)
			deps[n_deps++] = id_of("s", i + 1);
		graph_set(g, i, id_of("s", i), deps, n_deps);
	}
}

/* Adds dependency dep to node i (whose deps array must have room). */
static void add_dep(struct graph *g, size_t i, const char *dep, size_t room)
{
	char **deps = realloc(g->deps[i], room * sizeof(*deps));

	assert_non_null(deps);
	deps[g->nodes[i].n_deps] = dup_range(dep, strlen(dep));
	g->deps[i] = deps;
	g->nodes[i].deps = (const char *const *)deps;
	g->nodes[i].n_deps++;
}

/* ------------------------------------------------------------------ */
/* Validation                                                          */
/* ------------------------------------------------------------------ */

struct want_issue {
	enum kiln_dag_issue_kind kind;
	size_t node;
	size_t dep;
	const char *msg;
};

struct validate_case {
	const char *name;
	const char *graph;
	size_t n_issues;
	struct want_issue issues[4];
};

static const struct validate_case validate_cases[] = {
	{"empty", "", 0, {{0}}},
	{"single", "a", 0, {{0}}},
	{"chain", "a; b:a; c:b", 0, {{0}}},
	{"chain defined backwards", "c:b; b:a; a", 0, {{0}}},
	{"diamond", "a; b:a; c:a; d:b,c", 0, {{0}}},
	{"forest", "a; b:a; x; y:x; z:y,b", 0, {{0}}},
	{"duplicate id", "a; b:a; a", 1,
	 {{KILN_DAG_DUPLICATE_ID, 2, 0, "duplicate step id 'a'"}}},
	{"unknown dep", "a; b:a,zz", 1,
	 {{KILN_DAG_UNKNOWN_DEP, 1, 1,
	   "step 'b' depends on unknown step 'zz'"}}},
	{"self dep", "a; b:a,b", 1,
	 {{KILN_DAG_SELF_DEP, 1, 1, "step 'b' depends on itself"}}},
	{"duplicate dep", "a; b; c:a,b,a", 1,
	 {{KILN_DAG_DUPLICATE_DEP, 2, 2,
	   "step 'c' lists dependency 'a' twice"}}},
	{"duplicate unknown dep", "a:zz,zz", 2,
	 {{KILN_DAG_UNKNOWN_DEP, 0, 0,
	   "step 'a' depends on unknown step 'zz'"},
	  {KILN_DAG_DUPLICATE_DEP, 0, 1,
	   "step 'a' lists dependency 'zz' twice"}}},
	{"duplicate self dep", "a:a,a", 2,
	 {{KILN_DAG_SELF_DEP, 0, 0, "step 'a' depends on itself"},
	  {KILN_DAG_DUPLICATE_DEP, 0, 1,
	   "step 'a' lists dependency 'a' twice"}}},
	{"two-cycle", "a:b; b:a", 1,
	 {{KILN_DAG_CYCLE, 1, 0, "dependency cycle: a -> b -> a"}}},
	{"three-cycle", "a:b; b:c; c:a", 1,
	 {{KILN_DAG_CYCLE, 2, 0, "dependency cycle: a -> b -> c -> a"}}},
	{"three-cycle other way", "a:c; b:a; c:b", 1,
	 {{KILN_DAG_CYCLE, 1, 0, "dependency cycle: a -> c -> b -> a"}}},
	{"cycle behind a tail", "s; a:s,c; b:a; c:b", 1,
	 {{KILN_DAG_CYCLE, 2, 0, "dependency cycle: a -> c -> b -> a"}}},
	{"cycle closed by a later dep", "r; a:r,b; b:r,a", 1,
	 {{KILN_DAG_CYCLE, 2, 1, "dependency cycle: a -> b -> a"}}},
	{"two disjoint cycles", "a:b; b:a; c; d:e; e:d", 2,
	 {{KILN_DAG_CYCLE, 1, 0, "dependency cycle: a -> b -> a"},
	  {KILN_DAG_CYCLE, 4, 0, "dependency cycle: d -> e -> d"}}},
	{"two cycles sharing a node", "a:b,c; b:a; c:a", 2,
	 {{KILN_DAG_CYCLE, 1, 0, "dependency cycle: a -> b -> a"},
	  {KILN_DAG_CYCLE, 2, 0, "dependency cycle: a -> c -> a"}}},
	{"cycle hidden by unknown dep", "a:b; b:a,zz", 1,
	 {{KILN_DAG_UNKNOWN_DEP, 1, 1,
	   "step 'b' depends on unknown step 'zz'"}}},
	{"cycle hidden by self dep", "a:b,a; b:a", 1,
	 {{KILN_DAG_SELF_DEP, 0, 1, "step 'a' depends on itself"}}},
	{"cycle through a duplicated dep", "a:b,b; b:a", 2,
	 {{KILN_DAG_DUPLICATE_DEP, 0, 1,
	   "step 'a' lists dependency 'b' twice"},
	  {KILN_DAG_CYCLE, 1, 0, "dependency cycle: a -> b -> a"}}},
	{"cycle and duplicate id", "a:b; b:a; a", 2,
	 {{KILN_DAG_CYCLE, 1, 0, "dependency cycle: a -> b -> a"},
	  {KILN_DAG_DUPLICATE_ID, 2, 0, "duplicate step id 'a'"}}},
	{"issues in node order", "a:zz; a; b:b", 3,
	 {{KILN_DAG_UNKNOWN_DEP, 0, 0,
	   "step 'a' depends on unknown step 'zz'"},
	  {KILN_DAG_DUPLICATE_ID, 1, 0, "duplicate step id 'a'"},
	  {KILN_DAG_SELF_DEP, 2, 0, "step 'b' depends on itself"}}},
};

static void check_issues(const struct validate_case *c,
			 const struct kiln_dag_issue *got, size_t n_got)
{
	size_t i;

	if (n_got != c->n_issues)
		fail_msg("%s: %zu issues, wanted %zu (first: %s)", c->name,
			 n_got, c->n_issues, n_got > 0 ? got[0].msg : "-");
	for (i = 0; i < n_got && i < N(c->issues); i++) {
		const struct want_issue *w = &c->issues[i];

		if (got[i].kind != w->kind || got[i].node != w->node ||
		    got[i].dep != w->dep || strcmp(got[i].msg, w->msg) != 0)
			fail_msg("%s: issue %zu is {%d, %zu, %zu, \"%s\"}, "
				 "wanted {%d, %zu, %zu, \"%s\"}", c->name, i,
				 (int)got[i].kind, got[i].node, got[i].dep,
				 got[i].msg, (int)w->kind, w->node, w->dep,
				 w->msg);
	}
}

static void test_validate_table(void **state)
{
	size_t i;

	for (i = 0; i < N(validate_cases); i++) {
		const struct validate_case *c = &validate_cases[i];
		struct kiln_dag_issue issues[8];
		struct graph g;
		size_t n;

		build_graph(&g, c->graph);
		memset(issues, 0, sizeof(issues));
		n = kiln_dag_validate(g.nodes, g.n, issues, N(issues));
		check_issues(c, issues, n);
		graph_free(&g);
	}
}

/* More issues than room: all counted, only max_issues written. */
static void test_validate_max_issues(void **state)
{
	struct kiln_dag_issue issues[3];
	struct graph g;

	build_graph(&g, "a:x1,x2,x3,x4");
	memset(issues, 0, sizeof(issues));
	issues[2].msg[0] = '#';
	assert_int_equal(kiln_dag_validate(g.nodes, g.n, issues, 2), 4);
	assert_string_equal(issues[0].msg,
			    "step 'a' depends on unknown step 'x1'");
	assert_string_equal(issues[1].msg,
			    "step 'a' depends on unknown step 'x2'");
	assert_int_equal(issues[2].msg[0], '#');
	assert_int_equal(kiln_dag_validate(g.nodes, g.n, NULL, 0), 4);
	graph_free(&g);
}

/* 1 if s is well-formed UTF-8 (enough of it for these tests). */
static int is_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p != '\0') {
		size_t len = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2
				       : (*p >> 4) == 14 ? 3
				       : (*p >> 3) == 30 ? 4 : 0;
		size_t k;

		if (len == 0)
			return 0;
		for (k = 1; k < len; k++) {
			if ((p[k] & 0xC0) != 0x80)
				return 0;
		}
		p += len;
	}
	return 1;
}

/* 33 two-byte characters, then i: 67 bytes that are easy to cut badly. */
static char *accented_id(size_t i)
{
	char prefix[67];
	size_t k;

	for (k = 0; k < 33; k++)
		memcpy(prefix + 2 * k, "\xc3\xa9", 2);
	prefix[66] = '\0';
	return id_of(prefix, i);
}

/* A cycle through long ids: the message is cut, marked, still UTF-8. */
static void test_validate_long_cycle_message(void **state)
{
	struct kiln_dag_issue issue;
	struct graph g;
	size_t i, n = 10;

	graph_alloc(&g, n);
	for (i = 0; i < n; i++) {
		char **deps = calloc(1, sizeof(*deps));

		assert_non_null(deps);
		deps[0] = accented_id((i + 1) % n);
		graph_set(&g, i, accented_id(i), deps, 1);
	}
	assert_int_equal(kiln_dag_validate(g.nodes, g.n, &issue, 1), 1);
	assert_int_equal(issue.kind, KILN_DAG_CYCLE);
	assert_int_equal(issue.node, n - 1);
	assert_int_equal(issue.dep, 0);
	assert_true(strlen(issue.msg) < KILN_DAG_MSG_MAX);
	assert_true(strlen(issue.msg) > KILN_DAG_MSG_MAX - 8);
	assert_true(strncmp(issue.msg, "dependency cycle: ", 18) == 0);
	assert_string_equal(issue.msg + strlen(issue.msg) - 3, "...");
	assert_true(is_utf8(issue.msg));
	graph_free(&g);
}

/* A 2000-step chain, both ways round: valid, and fast enough to notice. */
static void test_validate_long_chain(void **state)
{
	struct kiln_dag_issue issues[2];
	struct graph g;
	int is_forward;

	for (is_forward = 0; is_forward <= 1; is_forward++) {
		build_chain(&g, 2000, is_forward);
		assert_int_equal(
			kiln_dag_validate(g.nodes, g.n, issues, N(issues)), 0);
		graph_free(&g);
	}
}

#define CHAIN_CYCLE "dependency cycle: s0 -> s1999 -> s1998 -> "

/* The same chain closed into one long loop: found by the iterative DFS. */
static void test_validate_long_cycle(void **state)
{
	struct kiln_dag_issue issues[2];
	struct graph g;

	build_chain(&g, 2000, 1);
	add_dep(&g, 0, "s1999", 1);
	assert_int_equal(kiln_dag_validate(g.nodes, g.n, issues, N(issues)),
			 1);
	/* DFS: s0 -> s1999 -> s1998 -> ... -> s1, whose dep s0 closes it. */
	assert_int_equal(issues[0].kind, KILN_DAG_CYCLE);
	assert_int_equal(issues[0].node, 1);
	assert_int_equal(issues[0].dep, 0);
	assert_true(strncmp(issues[0].msg, CHAIN_CYCLE,
			    strlen(CHAIN_CYCLE)) == 0);
	graph_free(&g);
}

/* Big graphs use the hash index: duplicates and unknowns still found. */
static void test_validate_big_graph_issues(void **state)
{
	struct kiln_dag_issue issues[4];
	struct graph g;

	build_chain(&g, 100, 1);
	free(g.ids[50]);
	g.ids[50] = id_of("s", 7);
	g.nodes[50].id = g.ids[50];
	add_dep(&g, 80, "nope", 2);
	assert_int_equal(kiln_dag_validate(g.nodes, g.n, issues, N(issues)),
			 3);
	assert_int_equal(issues[0].kind, KILN_DAG_DUPLICATE_ID);
	assert_int_equal(issues[0].node, 50);
	/* s51 depends on s50, which is now spelled s7 elsewhere. */
	assert_int_equal(issues[1].kind, KILN_DAG_UNKNOWN_DEP);
	assert_int_equal(issues[1].node, 51);
	assert_string_equal(issues[1].msg,
			    "step 's51' depends on unknown step 's50'");
	assert_int_equal(issues[2].kind, KILN_DAG_UNKNOWN_DEP);
	assert_int_equal(issues[2].node, 80);
	assert_int_equal(issues[2].dep, 1);
	graph_free(&g);
}

/* ------------------------------------------------------------------ */
/* Queries                                                             */
/* ------------------------------------------------------------------ */

static void test_find(void **state)
{
	struct graph g;

	build_graph(&g, "a; b:a; c:b");
	assert_int_equal(kiln_dag_find(g.nodes, g.n, "a"), 0);
	assert_int_equal(kiln_dag_find(g.nodes, g.n, "c"), 2);
	assert_int_equal(kiln_dag_find(g.nodes, g.n, "zz"), -1);
	assert_int_equal(kiln_dag_find(g.nodes, g.n, NULL), -1);
	assert_int_equal(kiln_dag_find(g.nodes, 0, "a"), -1);
	graph_free(&g);
}

struct ancestor_case {
	const char *graph;
	size_t anc;
	size_t idx;
	int want;
};

static const struct ancestor_case ancestor_cases[] = {
	{"a; b:a; c:a; d:b,c", 1, 3, 1}, /* direct */
	{"a; b:a; c:a; d:b,c", 0, 3, 1}, /* transitive */
	{"a; b:a; c:a; d:b,c", 3, 0, 0}, /* the other way round */
	{"a; b:a; c:a; d:b,c", 0, 0, 0}, /* not its own ancestor */
	{"a; b:a; c:a; d:b,c", 3, 3, 0},
	{"a; b:a; c:a; d:b,c", 1, 2, 0}, /* siblings */
	{"a; b:a; x; y:x", 0, 3, 0},     /* another tree */
	{"d:c; c:b; b:a; a", 3, 0, 1},   /* defined backwards */
	{"a; b:a", 5, 1, 0},             /* out of range */
};

static void test_is_ancestor_table(void **state)
{
	size_t i;

	for (i = 0; i < N(ancestor_cases); i++) {
		const struct ancestor_case *c = &ancestor_cases[i];
		struct graph g;

		build_graph(&g, c->graph);
		if (kiln_dag_is_ancestor(g.nodes, g.n, c->anc, c->idx) !=
		    c->want)
			fail_msg("%s: is_ancestor(%zu, %zu) != %d", c->graph,
				 c->anc, c->idx, c->want);
		graph_free(&g);
	}
}

static void test_is_ancestor_long_chain(void **state)
{
	struct graph g;

	build_chain(&g, 2000, 1);
	assert_int_equal(kiln_dag_is_ancestor(g.nodes, g.n, 0, 1999), 1);
	assert_int_equal(kiln_dag_is_ancestor(g.nodes, g.n, 1998, 1999), 1);
	assert_int_equal(kiln_dag_is_ancestor(g.nodes, g.n, 1999, 0), 0);
	assert_int_equal(kiln_dag_is_ancestor(g.nodes, g.n, 500, 500), 0);
	graph_free(&g);
}

struct final_case {
	const char *graph;
	size_t want;
};

static const struct final_case final_cases[] = {
	{"a", 0},
	{"a; b:a", 1},
	{"a; b:a; c:b", 2},
	{"b:a; a", 0},                 /* the one sink comes first */
	{"a; b:a; c:a", 2},            /* two sinks: the last */
	{"b:a; c:a; a", 1},            /* the last node is not a sink */
	{"x; a; b:a; y:x", 3},         /* forest */
	{"a; b:a; c:a; d:b,c", 3},     /* diamond */
	{"a; b; c", 2},                /* no edges: all sinks */
	{"a; c:a; b:a; d:a; e:d", 4},
};

static void test_final_node_table(void **state)
{
	size_t i;

	for (i = 0; i < N(final_cases); i++) {
		struct graph g;
		size_t got;

		build_graph(&g, final_cases[i].graph);
		got = kiln_dag_final_node(g.nodes, g.n);
		if (got != final_cases[i].want)
			fail_msg("%s: final node %zu, wanted %zu",
				 final_cases[i].graph, got,
				 final_cases[i].want);
		graph_free(&g);
	}
}

static void test_final_node_long_chain(void **state)
{
	struct graph g;

	build_chain(&g, 2000, 1);
	assert_int_equal(kiln_dag_final_node(g.nodes, g.n), 1999);
	graph_free(&g);
	build_chain(&g, 2000, 0);
	assert_int_equal(kiln_dag_final_node(g.nodes, g.n), 0);
	graph_free(&g);
}

#define P KILN_STEP_PENDING
#define R KILN_STEP_READY
#define U KILN_STEP_RUNNING
#define C KILN_STEP_COMPLETED
#define F KILN_STEP_FAILED
#define X KILN_STEP_CANCELLED

struct ready_case {
	const char *name;
	const char *graph;
	enum kiln_step_status status[8];
	size_t n_ready;
	size_t ready[8];
};

#define DIAMOND "a; b:a; c:a; d:b,c"

static const struct ready_case ready_cases[] = {
	{"fresh diamond", DIAMOND, {P, P, P, P}, 1, {0}},
	{"root done", DIAMOND, {C, P, P, P}, 2, {1, 2}},
	{"one branch running", DIAMOND, {C, U, P, P}, 1, {2}},
	{"join waits", DIAMOND, {C, C, U, P}, 0, {0}},
	{"join ready", DIAMOND, {C, C, C, P}, 1, {3}},
	{"failed branch blocks", DIAMOND, {C, F, C, P}, 0, {0}},
	{"cancelled", DIAMOND, {X, X, X, X}, 0, {0}},
	{"READY is not PENDING", DIAMOND, {R, P, P, P}, 0, {0}},
	{"all done", DIAMOND, {C, C, C, C}, 0, {0}},
	{"forest", "a; b:a; x; y:x", {C, P, P, P}, 2, {1, 2}},
	{"unknown dep never ready", "a; b:zz; c:a", {C, P, P}, 1, {2}},
	{"no deps", "a; b; c", {P, U, P}, 2, {0, 2}},
};

static void test_ready_table(void **state)
{
	size_t i, k;

	for (i = 0; i < N(ready_cases); i++) {
		const struct ready_case *c = &ready_cases[i];
		struct graph g;
		size_t out[8], n;

		build_graph(&g, c->graph);
		n = kiln_dag_ready(g.nodes, g.n, c->status, out);
		if (n != c->n_ready)
			fail_msg("%s: %zu ready, wanted %zu", c->name, n,
				 c->n_ready);
		for (k = 0; k < n; k++) {
			if (out[k] != c->ready[k])
				fail_msg("%s: ready[%zu] = %zu, wanted %zu",
					 c->name, k, out[k], c->ready[k]);
		}
		graph_free(&g);
	}
}

/* A wide fan, big enough for the hash index. */
static void test_ready_fan(void **state)
{
	enum kiln_step_status status[200];
	size_t out[200], i;
	struct graph g;

	graph_alloc(&g, N(status));
	for (i = 0; i < N(status); i++) {
		char **deps = calloc(1, sizeof(*deps));

		assert_non_null(deps);
		if (i > 0)
			deps[0] = id_of("root", 0);
		graph_set(&g, i, id_of(i == 0 ? "root" : "leaf", i), deps,
			  i > 0);
		status[i] = P;
	}
	assert_int_equal(kiln_dag_ready(g.nodes, g.n, status, out), 1);
	assert_int_equal(out[0], 0);
	status[0] = C;
	status[5] = U;
	assert_int_equal(kiln_dag_ready(g.nodes, g.n, status, out),
			 N(status) - 2);
	assert_int_equal(out[0], 1);
	assert_int_equal(out[4], 6);
	assert_int_equal(out[N(status) - 3], N(status) - 1);
	graph_free(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_validate_table),
		cmocka_unit_test(test_validate_max_issues),
		cmocka_unit_test(test_validate_long_cycle_message),
		cmocka_unit_test(test_validate_long_chain),
		cmocka_unit_test(test_validate_long_cycle),
		cmocka_unit_test(test_validate_big_graph_issues),
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_is_ancestor_table),
		cmocka_unit_test(test_is_ancestor_long_chain),
		cmocka_unit_test(test_final_node_table),
		cmocka_unit_test(test_final_node_long_chain),
		cmocka_unit_test(test_ready_table),
		cmocka_unit_test(test_ready_fan),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
