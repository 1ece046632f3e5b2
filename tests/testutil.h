/* testutil — what every cmocka test needs besides cmocka.
 *
 * Fixtures are copied into a fresh temporary folder per test (the tests may
 * damage them), and the folder is removed afterwards. Paths come from the
 * environment ctest sets (PCIFLEET_FIXTURES, PCIFLEET_AGENT). */
#ifndef PCIFLEET_TESTUTIL_H
#define PCIFLEET_TESTUTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

/* Path of tests/fixtures/NAME in the source tree (caller frees). */
char *tu_fixture_src(const char *name);
/* Copies tests/fixtures/NAME into a new temp folder; returns the copy's path
 * (caller frees, and removes it with tu_rm_rf). */
char *tu_fixture_copy(const char *name);
/* A new empty temp folder (caller frees and removes). */
char *tu_tmpdir(void);
void tu_rm_rf(const char *path);
/* Writes data to DIR/REL, creating parent folders. */
void tu_write(const char *dir, const char *rel, const char *data);
/* Runs a shell command, returns its stdout (caller frees) and exit status. */
char *tu_run(const char *cmd, int *status);

#endif
