/* ctlclock: the controller's clock follows the wall clock while nothing
 * steps it, and turns a step either way into a slew of at most 10 % of the
 * elapsed monotonic time, never going backwards. Each test states what it
 * proves; the clocks are fed by hand. */
#include "testutil.h"

#include "ctlclock.h"

#define S 1000 /* ms */
#define T0 (1700000000LL * S)

/* Unstepped: it is the wall clock, to the millisecond. */
static void test_follows_wall(void **state)
{
    (void)state;
    ctlclock_t c;
    ctlclock_init(&c, T0, 5 * S);
    for (int i = 1; i <= 100; i++)
        assert_int_equal(ctlclock_advance(&c, T0 + i * 250, 5 * S + i * 250), T0 + i * 250);
    assert_int_equal(ctlclock_skew(&c, T0 + 100 * 250), 0);
}

/* The wall clock jumps an hour ahead: every second of real time moves the
 * controller's clock 1.1 s, so a 15-s silence still reads 15-16.5 s (no
 * node is marked offline by the jump), and after ten hours it has caught up. */
static void test_step_forward(void **state)
{
    (void)state;
    ctlclock_t c;
    ctlclock_init(&c, T0, 0);
    int64_t jump = 3600 * S, prev = T0;
    for (int i = 1; i <= 15; i++) {
        int64_t v = ctlclock_advance(&c, T0 + jump + i * S, i * S);
        assert_true(v - prev >= S && v - prev <= S + S / 10);
        prev = v;
    }
    assert_true(prev - T0 >= 15 * S && prev - T0 <= 15 * S + 15 * S / 10);
    int64_t i = 15;
    while (ctlclock_skew(&c, T0 + jump + i * S) != 0 && i < 40000) {
        i++;
        ctlclock_advance(&c, T0 + jump + i * S, i * S);
    }
    assert_true(i >= 36000 && i < 36100); /* 3600 s at 0.1 s per second */
    assert_int_equal(ctlclock_advance(&c, T0 + jump + (i + 1) * S, (i + 1) * S), T0 + jump + (i + 1) * S);
}

/* The wall clock jumps an hour back: the controller's clock never goes
 * back, still advances at least 0.9 s per real second (a dead node is still
 * marked offline in time), and converges. */
static void test_step_back(void **state)
{
    (void)state;
    ctlclock_t c;
    ctlclock_init(&c, T0, 0);
    int64_t prev = T0;
    for (int64_t i = 1; i <= 36100; i++) {
        int64_t v = ctlclock_advance(&c, T0 - 3600 * S + i * S, i * S);
        assert_true(v - prev >= S - S / 10 && v - prev <= S);
        prev = v;
    }
    assert_int_equal(ctlclock_skew(&c, T0 - 3600 * S + 36100 * S), 0);
}

/* A monotonic reading that goes back (a caller's bug) changes nothing. */
static void test_mono_back(void **state)
{
    (void)state;
    ctlclock_t c;
    ctlclock_init(&c, T0, 10 * S);
    assert_int_equal(ctlclock_advance(&c, T0, 9 * S), T0);
    assert_int_equal(ctlclock_advance(&c, T0 + S, 11 * S), T0 + S);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_follows_wall),
        cmocka_unit_test(test_step_forward),
        cmocka_unit_test(test_step_back),
        cmocka_unit_test(test_mono_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
