/*
 * dag.h - pure functions over a workflow's step graph: validation (unique
 * ids, known dependencies, no cycles), ancestry, the final step, and the
 * ready set.  No I/O, no allocation visible to callers beyond what is
 * documented; table-driven unit tests live in tests/unit/test_dag.c.
 *
 * A node is a step: its id and the ids it depends on, in definition order.
 */
#ifndef KILN_DAG_H
#define KILN_DAG_H

#include <stddef.h>

#include "kiln/model.h"

struct kiln_dag_node {
	const char *id;          /* borrowed */
	const char *const *deps; /* borrowed array of n_deps ids */
	size_t n_deps;
};

enum kiln_dag_issue_kind {
	KILN_DAG_DUPLICATE_ID, /* node repeats an earlier node's id */
	KILN_DAG_UNKNOWN_DEP,  /* deps[dep] names no node */
	KILN_DAG_SELF_DEP,     /* deps[dep] names the node itself */
	KILN_DAG_DUPLICATE_DEP,/* deps[dep] repeats an earlier dep of the node */
	KILN_DAG_CYCLE,        /* node lies on a cycle; msg names the cycle */
};

#define KILN_DAG_MSG_MAX 512

struct kiln_dag_issue {
	enum kiln_dag_issue_kind kind;
	size_t node; /* index of the offending node */
	size_t dep;  /* index into that node's deps (UNKNOWN/SELF/DUPLICATE_DEP,
			and for CYCLE the dep that closes the cycle) */
	char msg[KILN_DAG_MSG_MAX]; /* e.g. "cycle: a -> b -> c -> a" */
};

/*
 * Checks the graph.  Writes at most max_issues issues (in node order) and
 * returns how many were found in all (which may exceed max_issues).  Cycles
 * are reported once per cycle, at the node where the cycle is closed, and
 * only when there are no unknown/self dependencies.  0 means valid.
 */
size_t kiln_dag_validate(const struct kiln_dag_node *nodes, size_t n,
			 struct kiln_dag_issue *issues, size_t max_issues);

/* Index of the node with this id, or -1. */
long kiln_dag_find(const struct kiln_dag_node *nodes, size_t n,
		   const char *id);

/* 1 if node anc is a (transitive) dependency of node idx, else 0.  Assumes a
 * validated graph.  A node is not its own ancestor. */
int kiln_dag_is_ancestor(const struct kiln_dag_node *nodes, size_t n,
			 size_t anc, size_t idx);

/*
 * The final step: among the sinks (nodes no other node depends on), the
 * last one in definition order.  Returns its index; n must be > 0 and the
 * graph valid.
 */
size_t kiln_dag_final_node(const struct kiln_dag_node *nodes, size_t n);

/*
 * The ready set: indices of nodes whose status is PENDING and all of whose
 * dependencies are COMPLETED, in definition order, written to out (room for
 * n).  Returns how many.
 */
size_t kiln_dag_ready(const struct kiln_dag_node *nodes, size_t n,
		      const enum kiln_step_status *status, size_t *out);

#endif
