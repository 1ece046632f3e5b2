/* log — one shape for every message a daemon prints.
 *
 * Lines go to stderr as "LEVEL program: message"; when stderr is the
 * systemd journal (JOURNAL_STREAM matches it) as "<PRIO>program: message",
 * the syslog priority the journal files them under (it keeps the time). log_set_level filters; the default is info.
 * Logging happens once, at the edge that decides what to do about an error. */
#ifndef PCIFLEET_LOG_H
#define PCIFLEET_LOG_H

#include <stdbool.h>
#include <stdio.h>

typedef enum { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG } log_level_t;

void log_init(const char *program, log_level_t level);
/* "error", "warn" (or "warning"), "info", "debug"; returns -1 for anything else. */
int log_level_parse(const char *name);
void log_set_level(log_level_t level);
/* Additions: the level in force, and where lines go (NULL = stderr; tests). */
log_level_t log_get_level(void);
void log_set_output(FILE *f);
/* Whether f is the stream JOURNAL_STREAM ("DEV:INODE") names. */
bool log_stream_is_journal(FILE *f, const char *journal_stream);
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
