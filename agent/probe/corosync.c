/* corosync — the cluster membership from corosync.conf (see corosync.h). */
#include "corosync.h"

#include "buf.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 16
#define MAX_LINE 4096

void cluster_free(cluster_t *c)
{
    if (!c)
        return;
    free(c->name);
    c->name = NULL;
    strv_free(&c->members);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int corosync_parse(const char *text, size_t len, cluster_t *out, char **why)
{
    memset(out, 0, sizeof *out);
    char *stack[MAX_DEPTH];
    int depth = 0, rc = 0;
    size_t lineno = 0;
    char *node_name = NULL, *node_addr = NULL; /* of the node block being read */
    for (size_t off = 0; off < len && !rc;) {
        const char *nl = memchr(text + off, '\n', len - off);
        size_t n = nl ? (size_t)(nl - (text + off)) : len - off;
        lineno++;
        if (n > MAX_LINE) {
            *why = xasprintf("line %zu is over %d bytes", lineno, MAX_LINE);
            rc = -EINVAL;
            break;
        }
        if (memchr(text + off, '\0', n)) { /* a NUL byte is not text */
            *why = xasprintf("line %zu holds a NUL byte", lineno);
            rc = -EINVAL;
            break;
        }
        char *line = xstrndup(text + off, n);
        off += n + (nl ? 1 : 0);
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *t = trim(line);
        size_t tl = strlen(t);
        if (!tl) {
            free(line);
            continue;
        }
        if (t[tl - 1] == '{') { /* "name {" opens a block */
            t[tl - 1] = '\0';
            if (depth == MAX_DEPTH) {
                *why = xasprintf("line %zu: blocks nested deeper than %d", lineno, MAX_DEPTH);
                rc = -EINVAL;
            } else {
                stack[depth++] = xstrdup(trim(t));
                if (depth == 2 && !strcmp(stack[0], "nodelist") && !strcmp(stack[1], "node")) {
                    free(node_name), free(node_addr);
                    node_name = node_addr = NULL;
                }
            }
        } else if (!strcmp(t, "}")) {
            if (!depth) {
                *why = xasprintf("line %zu: a '}' closes no block", lineno);
                rc = -EINVAL;
            } else {
                if (depth == 2 && !strcmp(stack[0], "nodelist") && !strcmp(stack[1], "node")) {
                    const char *m = node_name ? node_name : node_addr;
                    if (m && *m)
                        strv_add_unique(&out->members, m);
                }
                free(stack[--depth]);
            }
        } else {
            char *colon = strchr(t, ':');
            if (colon) {
                *colon = '\0';
                char *key = trim(t), *val = trim(colon + 1);
                if (depth == 1 && !strcmp(stack[0], "totem") && !strcmp(key, "cluster_name")) {
                    free(out->name);
                    out->name = xstrdup(val);
                } else if (depth == 2 && !strcmp(stack[0], "nodelist") && !strcmp(stack[1], "node")) {
                    if (!strcmp(key, "name")) {
                        free(node_name);
                        node_name = xstrdup(val);
                    } else if (!strcmp(key, "ring0_addr")) {
                        free(node_addr);
                        node_addr = xstrdup(val);
                    }
                }
            } /* anything else is corosync's business, not ours */
        }
        free(line);
    }
    if (!rc && depth)
        *why = xasprintf("the file ends inside the block '%s'", stack[depth - 1]), rc = -EINVAL;
    while (depth)
        free(stack[--depth]);
    free(node_name);
    free(node_addr);
    if (!rc && !out->name && out->members.n)
        out->name = xstrdup(""); /* members without a name: still a cluster */
    if (rc)
        cluster_free(out);
    else
        strv_sort(&out->members);
    return rc;
}

void corosync_probe(const root_t *root, cluster_t *out, errs_t *e)
{
    memset(out, 0, sizeof *out);
    static const char rel[] = "etc/pve/corosync.conf";
    char *text = NULL;
    size_t len = 0;
    int rc = root_read(root, rel, 1024 * 1024, &text, &len);
    if (rc == -ENOENT)
        return;
    if (rc < 0) {
        errs_add(e, rel, "cannot read: %s", strerror(-rc));
        return;
    }
    char *why = NULL;
    if (corosync_parse(text, len, out, &why) < 0) {
        errs_add(e, rel, "cannot use it (%s): the rollout will not know this node's cluster quorum", why);
        free(why);
    }
    free(text);
}
