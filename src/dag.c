/*
 * dag.c - checks and queries over a workflow's step graph (see dag.h).
 *
 * Steps name their dependencies by id, so every walk over the graph keeps
 * asking "which node has this id?".  A linear scan per edge is quadratic,
 * and a workflow may hold thousands of steps, so the functions that follow
 * edges build a small open-addressing hash index (id -> first node with
 * that id) for the length of the call and free it before they return.
 * Should that allocation fail, or the graph be too small to be worth it,
 * lookups fall back to a linear scan: slower, never wrong.
 *
 * Validation runs in two passes.  The first resolves every dependency to a
 * node index and classifies the bad ones (unknown, self, duplicate).  The
 * second, run only when no dependency is unknown or names its own step (a
 * cycle report over dangling edges would only confuse), is an iterative
 * depth-first search - no recursion, so a 10 000-step chain cannot blow the
 * stack.  Every back edge closes exactly one cycle, reported once, and the
 * DFS tree's parent links give its path.  Marks are kept per node and per
 * edge, and issues are emitted from them in node order at the end, so the
 * caller gets them sorted without any sorting.
 *
 * Validation needs scratch memory proportional to nodes + edges.  If it
 * cannot get it, kiln_dag_validate reports one issue of kind
 * KILN_DAG_CYCLE at node 0, dep 0, with the message "out of memory": the
 * graph is then rejected rather than waved through unchecked.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/dag.h"
#include "kiln/utf8.h"

#define NO_NODE SIZE_MAX

/* Below this many nodes a linear scan beats building a hash table. */
#define INDEX_MIN_NODES 16

/* ------------------------------------------------------------------ */
/* The id index                                                        */
/* ------------------------------------------------------------------ */

struct dag_index {
	const struct kiln_dag_node *nodes; /* borrowed */
	size_t n;
	size_t *slots; /* node index + 1, 0 = empty; NULL = scan linearly */
	size_t mask;   /* slot count - 1 (a power of two) */
};

static size_t hash_id(const char *s)
{
	uint64_t h = 14695981039346656037ULL; /* FNV-1a */

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return (size_t)h;
}

/* The slot holding id, or the empty slot where it would go. */
static size_t *index_slot(const struct dag_index *ix, const char *id)
{
	size_t h = hash_id(id) & ix->mask;

	while (ix->slots[h] != 0 &&
	       strcmp(ix->nodes[ix->slots[h] - 1].id, id) != 0)
		h = (h + 1) & ix->mask;
	return &ix->slots[h];
}

/* Builds the index; on failure leaves it in linear-scan mode. */
static void index_build(struct dag_index *ix,
			const struct kiln_dag_node *nodes, size_t n)
{
	size_t cap = 2 * INDEX_MIN_NODES, i;

	ix->nodes = nodes;
	ix->n = n;
	ix->slots = NULL;
	ix->mask = 0;
	if (n < INDEX_MIN_NODES)
		return;
	/* At most half full, so probe runs stay short. */
	while (cap / 2 < n) {
		if (cap > SIZE_MAX / 2)
			return;
		cap *= 2;
	}
	ix->slots = calloc(cap, sizeof(*ix->slots));
	if (ix->slots == NULL)
		return;
	ix->mask = cap - 1;
	for (i = 0; i < n; i++) {
		size_t *slot = index_slot(ix, nodes[i].id);

		/* Keep the first node of a duplicated id. */
		if (*slot == 0)
			*slot = i + 1;
	}
}

static void index_free(struct dag_index *ix)
{
	free(ix->slots);
	ix->slots = NULL;
}

/* Index of the first node named id, or NO_NODE. */
static size_t index_find(const struct dag_index *ix, const char *id)
{
	size_t slot;
	long found;

	if (ix->slots == NULL) {
		found = kiln_dag_find(ix->nodes, ix->n, id);
		return found < 0 ? NO_NODE : (size_t)found;
	}
	slot = *index_slot(ix, id);
	return slot == 0 ? NO_NODE : slot - 1;
}

long kiln_dag_find(const struct kiln_dag_node *nodes, size_t n,
		   const char *id)
{
	size_t i;

	if (id == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		if (strcmp(nodes[i].id, id) == 0)
			return (long)i;
	}
	return -1;
}

/* ------------------------------------------------------------------ */
/* Issue messages                                                      */
/* ------------------------------------------------------------------ */

/* A message under construction in an issue's fixed buffer. */
struct msg_buf {
	char *s;
	size_t len;
	int is_cut;
};

static void msg_start(struct msg_buf *m, char *s)
{
	m->s = s;
	m->len = 0;
	m->is_cut = 0;
	s[0] = '\0';
}

static void msg_add(struct msg_buf *m, const char *text)
{
	size_t room = KILN_DAG_MSG_MAX - 1 - m->len;
	size_t len = strlen(text);

	if (len > room) {
		len = room;
		m->is_cut = 1;
	}
	memcpy(m->s + m->len, text, len);
	m->len += len;
	m->s[m->len] = '\0';
}

/*
 * Marks a cut message with "...".  The cut is moved back to the start of a
 * UTF-8 sequence: the message ends up in a JSON reply, and jansson refuses
 * strings that end half-way through a character.
 */
static void msg_end(struct msg_buf *m)
{
	size_t cut = KILN_DAG_MSG_MAX - 4;

	if (!m->is_cut)
		return;
	cut = kiln_utf8_prefix(m->s, m->len, cut);
	memcpy(m->s + cut, "...", 4);
	m->len = cut + 3;
}

/* ------------------------------------------------------------------ */
/* Validation                                                          */
/* ------------------------------------------------------------------ */

/* What is wrong with one dependency (one edge). */
enum edge_mark {
	EDGE_OK = 0,
	EDGE_UNKNOWN,
	EDGE_SELF,
	EDGE_DUPLICATE,
	EDGE_CYCLE, /* a back edge: closes a cycle */
};

enum dfs_color { WHITE = 0, GRAY, BLACK };

struct validation {
	const struct kiln_dag_node *nodes; /* borrowed */
	size_t n;
	struct dag_index ix;
	size_t *first_edge;  /* n + 1: node i's edges are [first_edge[i],
				first_edge[i + 1]) */
	size_t *target;      /* per edge: the node depended on, NO_NODE if
				the edge is bad */
	unsigned char *mark; /* per edge: enum edge_mark */
	size_t *seen_by;     /* per node: 1 + last node that listed it */
	unsigned char *color;/* per node: enum dfs_color */
	size_t *parent;      /* per node: DFS tree parent, NO_NODE at roots */
	size_t *next_edge;   /* per node: next edge for the DFS to follow */
	size_t *stack;       /* DFS stack; later scratch for cycle paths */
};

static int validation_init(struct validation *v,
			   const struct kiln_dag_node *nodes, size_t n)
{
	size_t n_edges = 0, i;

	memset(v, 0, sizeof(*v));
	v->nodes = nodes;
	v->n = n;
	for (i = 0; i < n; i++)
		n_edges += nodes[i].n_deps;
	index_build(&v->ix, nodes, n);
	/* + 1 so that no request is for zero bytes. */
	v->first_edge = calloc(n + 1, sizeof(*v->first_edge));
	v->target = calloc(n_edges + 1, sizeof(*v->target));
	v->mark = calloc(n_edges + 1, sizeof(*v->mark));
	v->seen_by = calloc(n, sizeof(*v->seen_by));
	v->color = calloc(n, sizeof(*v->color));
	v->parent = calloc(n, sizeof(*v->parent));
	v->next_edge = calloc(n, sizeof(*v->next_edge));
	v->stack = calloc(n, sizeof(*v->stack));
	if (v->first_edge == NULL || v->target == NULL || v->mark == NULL ||
	    v->seen_by == NULL || v->color == NULL || v->parent == NULL ||
	    v->next_edge == NULL || v->stack == NULL)
		return -1;
	for (i = 0; i < n; i++)
		v->first_edge[i + 1] = v->first_edge[i] + nodes[i].n_deps;
	return 0;
}

static void validation_free(struct validation *v)
{
	index_free(&v->ix);
	free(v->first_edge);
	free(v->target);
	free(v->mark);
	free(v->seen_by);
	free(v->color);
	free(v->parent);
	free(v->next_edge);
	free(v->stack);
}

/* 1 if an earlier unknown dependency of node u is spelled like dep j. */
static int is_repeated_unknown(const struct validation *v, size_t u,
			       size_t j)
{
	const struct kiln_dag_node *node = &v->nodes[u];
	size_t k;

	for (k = 0; k < j; k++) {
		if (v->mark[v->first_edge[u] + k] == EDGE_UNKNOWN &&
		    strcmp(node->deps[k], node->deps[j]) == 0)
			return 1;
	}
	return 0;
}

/*
 * Pass one: resolves and classifies every edge.  Returns 1 if any edge is
 * unknown or a self dependency (which rules out the cycle search).
 */
static int classify_edges(struct validation *v)
{
	int has_dangling = 0;
	size_t u, j;

	for (u = 0; u < v->n; u++) {
		const struct kiln_dag_node *node = &v->nodes[u];

		for (j = 0; j < node->n_deps; j++) {
			size_t e = v->first_edge[u] + j;
			size_t t = index_find(&v->ix, node->deps[j]);
			enum edge_mark mark = EDGE_OK;

			v->target[e] = NO_NODE;
			if (t != NO_NODE ? v->seen_by[t] == u + 1
					 : is_repeated_unknown(v, u, j))
				mark = EDGE_DUPLICATE;
			else if (strcmp(node->deps[j], node->id) == 0)
				mark = EDGE_SELF;
			else if (t == NO_NODE)
				mark = EDGE_UNKNOWN;
			else
				v->target[e] = t;
			if (t != NO_NODE)
				v->seen_by[t] = u + 1;
			v->mark[e] = (unsigned char)mark;
			if (mark == EDGE_UNKNOWN || mark == EDGE_SELF)
				has_dangling = 1;
		}
	}
	return has_dangling;
}

/* Pass two: an iterative DFS marking every back edge as EDGE_CYCLE. */
static void mark_cycles(struct validation *v)
{
	size_t root, sp, u, e, t;

	for (root = 0; root < v->n; root++) {
		if (v->color[root] != WHITE)
			continue;
		v->color[root] = GRAY;
		v->parent[root] = NO_NODE;
		v->next_edge[root] = v->first_edge[root];
		v->stack[0] = root;
		sp = 1;
		while (sp > 0) {
			u = v->stack[sp - 1];
			if (v->next_edge[u] == v->first_edge[u + 1]) {
				v->color[u] = BLACK;
				sp--;
				continue;
			}
			e = v->next_edge[u]++;
			t = v->target[e];
			if (t == NO_NODE)
				continue;
			if (v->color[t] == WHITE) {
				v->color[t] = GRAY;
				v->parent[t] = u;
				v->next_edge[t] = v->first_edge[t];
				v->stack[sp++] = t;
			} else if (v->color[t] == GRAY) {
				/* t is on the stack: u -> t closes a loop. */
				v->mark[e] = EDGE_CYCLE;
			}
		}
	}
}

/*
 * "dependency cycle: t -> ... -> u -> t" for the back edge u -> t: the
 * DFS tree path from t down to u, then the closing edge.  The path is
 * collected from u upwards into the (by now idle) DFS stack.
 */
static void format_cycle(const struct validation *v, size_t u, size_t t,
			 struct msg_buf *m)
{
	size_t len = 0, x = u;

	for (;;) {
		assert(len < v->n && x != NO_NODE);
		v->stack[len++] = x;
		if (x == t)
			break;
		x = v->parent[x];
	}
	msg_add(m, "dependency cycle: ");
	while (len > 0) {
		msg_add(m, v->nodes[v->stack[--len]].id);
		msg_add(m, " -> ");
	}
	msg_add(m, v->nodes[t].id);
}

/* Writes issue number count (if there is room) and returns count + 1. */
static size_t emit(const struct validation *v, struct kiln_dag_issue *issues,
		   size_t max_issues, size_t count,
		   enum kiln_dag_issue_kind kind, size_t u, size_t j)
{
	const struct kiln_dag_node *node = &v->nodes[u];
	struct kiln_dag_issue *is;
	struct msg_buf m;

	if (count >= max_issues)
		return count + 1;
	is = &issues[count];
	is->kind = kind;
	is->node = u;
	is->dep = j;
	msg_start(&m, is->msg);
	switch (kind) {
	case KILN_DAG_DUPLICATE_ID:
		msg_add(&m, "duplicate step id '");
		msg_add(&m, node->id);
		msg_add(&m, "'");
		break;
	case KILN_DAG_UNKNOWN_DEP:
		msg_add(&m, "step '");
		msg_add(&m, node->id);
		msg_add(&m, "' depends on unknown step '");
		msg_add(&m, node->deps[j]);
		msg_add(&m, "'");
		break;
	case KILN_DAG_SELF_DEP:
		msg_add(&m, "step '");
		msg_add(&m, node->id);
		msg_add(&m, "' depends on itself");
		break;
	case KILN_DAG_DUPLICATE_DEP:
		msg_add(&m, "step '");
		msg_add(&m, node->id);
		msg_add(&m, "' lists dependency '");
		msg_add(&m, node->deps[j]);
		msg_add(&m, "' twice");
		break;
	case KILN_DAG_CYCLE:
		format_cycle(v, u, v->target[v->first_edge[u] + j], &m);
		break;
	}
	msg_end(&m);
	return count + 1;
}

static enum kiln_dag_issue_kind issue_kind(enum edge_mark mark)
{
	switch (mark) {
	case EDGE_UNKNOWN: return KILN_DAG_UNKNOWN_DEP;
	case EDGE_SELF: return KILN_DAG_SELF_DEP;
	case EDGE_DUPLICATE: return KILN_DAG_DUPLICATE_DEP;
	case EDGE_OK:
	case EDGE_CYCLE: break;
	}
	return KILN_DAG_CYCLE;
}

size_t kiln_dag_validate(const struct kiln_dag_node *nodes, size_t n,
			 struct kiln_dag_issue *issues, size_t max_issues)
{
	struct validation v;
	size_t count = 0, u, j;

	if (n == 0)
		return 0;
	if (validation_init(&v, nodes, n) != 0) {
		if (max_issues > 0) {
			issues[0].kind = KILN_DAG_CYCLE;
			issues[0].node = 0;
			issues[0].dep = 0;
			memcpy(issues[0].msg, "out of memory",
			       sizeof("out of memory"));
		}
		count = 1;
		goto out;
	}
	if (!classify_edges(&v))
		mark_cycles(&v);
	for (u = 0; u < n; u++) {
		if (index_find(&v.ix, nodes[u].id) != u)
			count = emit(&v, issues, max_issues, count,
				     KILN_DAG_DUPLICATE_ID, u, 0);
		for (j = 0; j < nodes[u].n_deps; j++) {
			enum edge_mark mark = v.mark[v.first_edge[u] + j];

			if (mark != EDGE_OK)
				count = emit(&v, issues, max_issues, count,
					     issue_kind(mark), u, j);
		}
	}
out:
	validation_free(&v);
	return count;
}

/* ------------------------------------------------------------------ */
/* Queries                                                             */
/* ------------------------------------------------------------------ */

/*
 * A breadth-first walk up the dependencies of idx.  It needs a queue and
 * a visited set; if those cannot be allocated the answer is 0, so a
 * mapping check under memory pressure rejects rather than accepts.
 */
int kiln_dag_is_ancestor(const struct kiln_dag_node *nodes, size_t n,
			 size_t anc, size_t idx)
{
	struct dag_index ix;
	unsigned char *is_queued = NULL;
	size_t *queue = NULL;
	size_t head = 0, tail = 0, j;
	int is_ancestor = 0;

	index_build(&ix, nodes, n);
	if (anc >= n || idx >= n || anc == idx)
		goto out;
	is_queued = calloc(n, 1);
	queue = calloc(n, sizeof(*queue));
	if (is_queued == NULL || queue == NULL)
		goto out;
	is_queued[idx] = 1;
	queue[tail++] = idx;
	while (head < tail && !is_ancestor) {
		const struct kiln_dag_node *node = &nodes[queue[head++]];

		for (j = 0; j < node->n_deps; j++) {
			size_t t = index_find(&ix, node->deps[j]);

			if (t == NO_NODE || is_queued[t])
				continue;
			if (t == anc) {
				is_ancestor = 1;
				break;
			}
			is_queued[t] = 1;
			queue[tail++] = t;
		}
	}
out:
	free(is_queued);
	free(queue);
	index_free(&ix);
	return is_ancestor;
}

/* 1 if some node lists id among its dependencies (the slow way). */
static int is_depended_on(const struct kiln_dag_node *nodes, size_t n,
			  const char *id)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		for (j = 0; j < nodes[i].n_deps; j++) {
			if (strcmp(nodes[i].deps[j], id) == 0)
				return 1;
		}
	}
	return 0;
}

/*
 * Marks every node that something depends on, then takes the last unmarked
 * one.  Without memory for the marks it asks each node, from the end, the
 * slow way.  A graph with no sink at all (only possible with a cycle)
 * yields the last node.
 */
size_t kiln_dag_final_node(const struct kiln_dag_node *nodes, size_t n)
{
	struct dag_index ix;
	unsigned char *is_dep;
	size_t i, j, final = n - 1;

	assert(n > 0);
	is_dep = calloc(n, 1);
	if (is_dep == NULL) {
		for (i = n; i-- > 0;) {
			if (!is_depended_on(nodes, n, nodes[i].id))
				return i;
		}
		return final;
	}
	index_build(&ix, nodes, n);
	for (i = 0; i < n; i++) {
		for (j = 0; j < nodes[i].n_deps; j++) {
			size_t t = index_find(&ix, nodes[i].deps[j]);

			if (t != NO_NODE)
				is_dep[t] = 1;
		}
	}
	for (i = n; i-- > 0;) {
		if (!is_dep[i]) {
			final = i;
			break;
		}
	}
	index_free(&ix);
	free(is_dep);
	return final;
}

size_t kiln_dag_ready(const struct kiln_dag_node *nodes, size_t n,
		      const enum kiln_step_status *status, size_t *out)
{
	struct dag_index ix;
	size_t n_ready = 0, i, j;

	index_build(&ix, nodes, n);
	for (i = 0; i < n; i++) {
		int is_ready = status[i] == KILN_STEP_PENDING;

		for (j = 0; is_ready && j < nodes[i].n_deps; j++) {
			size_t t = index_find(&ix, nodes[i].deps[j]);

			/* A dependency on no known step never completes. */
			is_ready = t != NO_NODE &&
				   status[t] == KILN_STEP_COMPLETED;
		}
		if (is_ready)
			out[n_ready++] = i;
	}
	index_free(&ix);
	return n_ready;
}
