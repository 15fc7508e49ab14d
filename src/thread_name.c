/*
 * thread_name.c - names kilnd's threads (kiln-io, kiln-worker, ...), so
 * that `top -H`, `ps -L`, perf and gdb tell them apart.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include <pthread.h>

#include "kiln/thread_name.h"

void kiln_thread_name(pthread_t thread, const char *name)
{
	/* At most 15 characters; a longer name is refused (ERANGE) and the
	 * thread keeps the process's name, which is harmless. */
	(void)pthread_setname_np(thread, name);
}
