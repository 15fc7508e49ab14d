/*
 * webhooks.h - the dispatcher that sends the webhook outbox.
 *
 * One thread decides (claims due deliveries from the store, records how
 * each attempt went); the attempts themselves run on their own libcurl
 * multi loop, so a slow receiver costs a socket, never a thread, and never
 * delays the engine or the HTTP threads.  docs/webhooks.md is the
 * user-facing description.
 */
#ifndef KILN_WEBHOOKS_H
#define KILN_WEBHOOKS_H

#include "kiln/common.h"
#include "kiln/config.h"

struct kiln_webhooks;

/* Recovers deliveries a dead process left in flight, then starts sending.
 * cfg is borrowed and must outlive the dispatcher; its webhooks section
 * must have its default secret set. */
enum kiln_rc kiln_webhooks_start(const struct kiln_config *cfg,
				 struct kiln_webhooks **out,
				 struct kiln_err *err) KILN_WARN_UNUSED;

/* Stops sending: attempts in flight are abandoned and sent again at the
 * next start.  NULL is a no-op. */
void kiln_webhooks_stop(struct kiln_webhooks *w);

#endif
