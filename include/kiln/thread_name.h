/*
 * thread_name.h - names for kilnd's threads, as `top -H` and gdb show them.
 */
#ifndef KILN_THREAD_NAME_H
#define KILN_THREAD_NAME_H

#include <pthread.h>

/* Names thread (at most 15 characters: "kiln-io", "kiln-worker", ...). */
void kiln_thread_name(pthread_t thread, const char *name);

#endif
