/* zap — the controller's ZAP handler (ZeroMQ RFC 27) as a czmq actor.
 *
 * Contract: zap_start binds a REP socket on inproc://zeromq.zap.01 in czmq's
 * shared context, so every CURVE server socket of this process asks it about
 * each new connection. It admits every CURVE client and answers with the
 * client's public key in Z85 (40 characters) as the ZAP User-Id; ZeroMQ then
 * attaches that User-Id to every frame received from the connection
 * (zframe_meta(frame, "User-Id")). Deciding what an unknown key may do is the
 * application's job (ingest.c), not ZAP's: that way an unknown agent gets an
 * Error reply telling the operator what to run instead of a silent refusal.
 * NULL-mechanism peers (in-process and admin sockets, which set no ZAP
 * domain) are admitted with an empty User-Id; PLAIN is refused.
 *
 * Only one ZAP handler can exist per process; zap_start fails (NULL, *err
 * set, caller frees) when the endpoint is taken. zap_stop (NULL-safe) ends
 * the actor and sets *zap to NULL. */
#ifndef PCIFLEET_ZAP_H
#define PCIFLEET_ZAP_H

#include <czmq.h>

zactor_t *zap_start(char **err);
void zap_stop(zactor_t **zap);

#endif
