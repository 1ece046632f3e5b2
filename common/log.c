/* log — one shape for every message a daemon prints (see log.h).
 *
 * Each line is built whole and written with one fputs, so lines from
 * different threads (czmq actors) never interleave. Control characters in
 * the message (a peer-supplied node name holding a newline, say) are written
 * as \xHH: one event is always one line.
 *
 * When stderr is the systemd journal's stream (JOURNAL_STREAM names its
 * device and inode, systemd.exec(5)), each line starts with the syslog
 * priority "<N>" instead of the level word, so journalctl -p filters and
 * colours it; anything else (a terminal, a file, a pipe) gets the words. */
#include "log.h"

#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *log_program = "pcifleet";
static log_level_t log_level = LOG_LEVEL_INFO;
static FILE *log_stream; /* NULL = stderr */
static int log_journal = -1; /* -1 not yet checked, 0 words, 1 priorities */

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const level_tags[] = {"ERROR", "WARN", "INFO", "DEBUG"};
/* syslog priorities: err, warning, info, debug */
static const int level_prio[] = {3, 4, 6, 7};

bool log_stream_is_journal(FILE *f, const char *journal_stream)
{
    if (!f || !journal_stream || !*journal_stream)
        return false;
    char *end = NULL;
    unsigned long long dev = strtoull(journal_stream, &end, 10);
    if (end == journal_stream || *end != ':')
        return false;
    const char *ino_s = end + 1;
    unsigned long long ino = strtoull(ino_s, &end, 10);
    if (end == ino_s || *end != '\0')
        return false;
    struct stat st;
    int fd = fileno(f);
    if (fd < 0 || fstat(fd, &st) < 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(const char *program, log_level_t level)
{
    if (program && *program) {
        const char *slash = strrchr(program, '/');
        log_program = slash ? slash + 1 : program;
    }
    log_set_level(level);
    /* decided once, before any thread logs */
    log_journal = log_stream_is_journal(log_stream ? log_stream : stderr, getenv("JOURNAL_STREAM"));
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
    log_journal = -1;
}

static void log_emit(log_level_t level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void log_emit(log_level_t level, const char *fmt, va_list ap)
{
    if (level > log_level)
        return;
    buf_t msg = BUF_INIT;
    buf_vprintf(&msg, fmt, ap);
    FILE *out = log_stream ? log_stream : stderr;
    if (log_journal < 0)
        log_journal = log_stream_is_journal(out, getenv("JOURNAL_STREAM"));
    buf_t line = BUF_INIT;
    if (log_journal)
        buf_printf(&line, "<%d>%s: ", level_prio[level], log_program);
    else
        buf_printf(&line, "%s %s: ", level_tags[level], log_program);
    for (size_t i = 0; i < msg.len; i++) {
        unsigned char c = (unsigned char)msg.p[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            buf_printf(&line, "\\x%02x", c);
        else
            buf_putc(&line, (char)c);
    }
    buf_putc(&line, '\n');
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
