#include "ctlclock.h"

#include "log.h"

#include <time.h>

/* The clock runs at most this fraction faster or slower than the
 * monotonic one while it catches up with a stepped wall clock. */
#define SLEW_DIV 10
#define STEP_LOG_MS 2000
#define STEP_DONE_MS 1000

void ctlclock_init(ctlclock_t *c, int64_t wall_ms, int64_t mono_ms)
{
    c->value = wall_ms;
    c->last_mono = mono_ms;
    c->stepped = false;
}

int64_t ctlclock_advance(ctlclock_t *c, int64_t wall_ms, int64_t mono_ms)
{
    int64_t d = mono_ms - c->last_mono;
    if (d < 0)
        d = 0; /* cannot happen with CLOCK_MONOTONIC; never go back */
    c->last_mono += d;
    c->value += d;
    int64_t err = wall_ms - c->value, max = d / SLEW_DIV;
    c->value += err > max ? max : err < -max ? -max : err;
    return c->value;
}

int64_t ctlclock_skew(const ctlclock_t *c, int64_t wall_ms)
{
    return wall_ms - c->value;
}

static int64_t ms_of(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ctlclock_start(ctlclock_t *c)
{
    ctlclock_init(c, ms_of(CLOCK_REALTIME), ms_of(CLOCK_MONOTONIC));
}

int64_t ctlclock_now(ctlclock_t *c)
{
    int64_t wall = ms_of(CLOCK_REALTIME);
    int64_t v = ctlclock_advance(c, wall, ms_of(CLOCK_MONOTONIC));
    int64_t skew = wall - v, mag = skew < 0 ? -skew : skew;
    if (!c->stepped && mag > STEP_LOG_MS) {
        c->stepped = true;
        log_warn("the wall clock was stepped by %+.1f s; the controller's clock follows it at %d %% of the "
                 "elapsed time, so heartbeats and timers see no jump",
                 skew / 1000.0, 100 / SLEW_DIV);
    } else if (c->stepped && mag < STEP_DONE_MS) {
        c->stepped = false;
        log_info("the controller's clock has caught up with the wall clock");
    }
    return v;
}
