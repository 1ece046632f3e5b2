/* log — one shape for every message a daemon prints (see log.h).
 *
 * Each line is built whole and written with one fputs, so lines from
 * different threads (czmq actors) never interleave. Control characters in
 * the message (a peer-supplied node name holding a newline, say) are written
 * as \xHH: one event is always one line. */
#include "log.h"

#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *log_program = "pcifleet";
static log_level_t log_level = LOG_LEVEL_INFO;
static FILE *log_stream; /* NULL = stderr */

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const level_tags[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void log_init(const char *program, log_level_t level)
{
    if (program && *program) {
        const char *slash = strrchr(program, '/');
        log_program = slash ? slash + 1 : program;
    }
    log_set_level(level);
}

int log_level_parse(const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    if (strcmp(name, "warning") == 0)
        return LOG_LEVEL_WARN;
    return -1;
}

void log_set_level(log_level_t level)
{
    if ((int)level < LOG_LEVEL_ERROR)
        level = LOG_LEVEL_ERROR;
    if (level > LOG_LEVEL_DEBUG)
        level = LOG_LEVEL_DEBUG;
    log_level = level;
}

log_level_t log_get_level(void)
{
    return log_level;
}

void log_set_output(FILE *f)
{
    log_stream = f;
}

static void log_emit(log_level_t level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void log_emit(log_level_t level, const char *fmt, va_list ap)
{
    if (level > log_level)
        return;
    buf_t msg = BUF_INIT;
    buf_vprintf(&msg, fmt, ap);
    buf_t line = BUF_INIT;
    buf_printf(&line, "%s %s: ", level_tags[level], log_program);
    for (size_t i = 0; i < msg.len; i++) {
        unsigned char c = (unsigned char)msg.p[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            buf_printf(&line, "\\x%02x", c);
        else
            buf_putc(&line, (char)c);
    }
    buf_putc(&line, '\n');
    FILE *out = log_stream ? log_stream : stderr;
    fputs(line.p, out);
    fflush(out);
    buf_free(&line);
    buf_free(&msg);
}

#define LOG_FN(name, level)                                                                                  \
    void name(const char *fmt, ...)                                                                          \
    {                                                                                                        \
        va_list ap;                                                                                          \
        va_start(ap, fmt);                                                                                   \
        log_emit(level, fmt, ap);                                                                            \
        va_end(ap);                                                                                          \
    }

LOG_FN(log_error, LOG_LEVEL_ERROR)
LOG_FN(log_warn, LOG_LEVEL_WARN)
LOG_FN(log_info, LOG_LEVEL_INFO)
LOG_FN(log_debug, LOG_LEVEL_DEBUG)
