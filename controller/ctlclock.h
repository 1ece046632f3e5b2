/* ctlclock — the controller's time: milliseconds since the epoch that
 * follow the wall clock but never jump.
 *
 * Contract: the clock advances with CLOCK_MONOTONIC, at 0.9 to 1.1 times its
 * rate, towards the wall clock. A wall-clock step (NTP correcting a wrong
 * clock, `date -s`) thus becomes a slow slew: liveness and offline marking,
 * rollout and assign timers measure real elapsed time within 10 %, and the
 * controller's time never goes backwards. It is the wall clock itself while
 * nothing steps it. ctlclock_advance is the pure rule (for tests);
 * ctlclock_now reads both clocks and logs a step of more than 2 s once. */
#ifndef PCIFLEET_CTLCLOCK_H
#define PCIFLEET_CTLCLOCK_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int64_t value;     /* the controller's time, ms since the epoch */
    int64_t last_mono; /* CLOCK_MONOTONIC at value, ms */
    bool stepped;      /* a step is being slewed out (logged once) */
} ctlclock_t;

void ctlclock_init(ctlclock_t *c, int64_t wall_ms, int64_t mono_ms);
/* Moves the clock to mono_ms; returns the new value. */
int64_t ctlclock_advance(ctlclock_t *c, int64_t wall_ms, int64_t mono_ms);
/* The wall clock minus the controller's time, ms (what is left to slew). */
int64_t ctlclock_skew(const ctlclock_t *c, int64_t wall_ms);

void ctlclock_start(ctlclock_t *c);
int64_t ctlclock_now(ctlclock_t *c);

#endif
