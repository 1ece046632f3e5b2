/* log — one shape for every message a daemon prints.
 *
 * Lines go to stderr as "LEVEL program: message" (systemd's journal takes
 * stderr and keeps the time). log_set_level filters; the default is info.
 * Logging happens once, at the edge that decides what to do about an error. */
#ifndef PCIFLEET_LOG_H
#define PCIFLEET_LOG_H

typedef enum { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG } log_level_t;

void log_init(const char *program, log_level_t level);
/* "error", "warn", "info", "debug"; returns -1 for anything else. */
int log_level_parse(const char *name);
void log_set_level(log_level_t level);
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
