/* libvirt — PCI passthrough in libvirt domain definitions. The contract is in
 * vms.h. libxml2 parses with XML_PARSE_NONET and without XML_PARSE_NOENT or
 * XML_PARSE_DTDLOAD; documents with a DOCTYPE are refused before parsing
 * (libvirt never writes one), so no entity can be declared, let alone
 * expanded. While parsing, this thread's libxml2 error handlers are swapped
 * for silent ones and put back afterwards: nothing is printed. */
#include "vms.h"

#include "buf.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

static void silent_generic(void *ctx, const char *msg, ...)
{
    (void)ctx;
    (void)msg;
}

static void silent_structured(void *ctx, xmlErrorPtr err)
{
    (void)ctx;
    (void)err;
}

static bool is_elem(const xmlNode *n, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && n->ns == NULL && n->name &&
           strcmp((const char *)n->name, name) == 0;
}

static const xmlNode *child(const xmlNode *n, const char *name)
{
    for (const xmlNode *c = n ? n->children : NULL; c; c = c->next)
        if (is_elem(c, name))
            return c;
    return NULL;
}

/* An attribute as a malloc'd C string (caller frees), NULL when absent. */
static char *attr(const xmlNode *n, const char *name)
{
    xmlChar *v = xmlGetNoNsProp(n, (const xmlChar *)name);
    if (!v)
        return NULL;
    char *s = xstrdup((const char *)v);
    xmlFree(v);
    return s;
}

static char *text_trimmed(const xmlNode *n)
{
    xmlChar *v = xmlNodeGetContent(n);
    if (!v)
        return NULL;
    const char *s = (const char *)v;
    size_t len = strlen(s);
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\n' || s[len - 1] == '\t' || s[len - 1] == '\r'))
        len--;
    while (len && (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')) {
        s++;
        len--;
    }
    char *r = len ? xstrndup(s, len) : NULL;
    xmlFree(v);
    return r;
}

/* libvirt reads address numbers with base 0 (0x.. hex, else decimal); a
 * missing attribute is 0. */
static bool addr_field(const xmlNode *a, const char *name, unsigned long max, unsigned long *out)
{
    char *v = attr(a, name);
    if (!v) {
        *out = 0;
        return true;
    }
    char *end;
    errno = 0;
    unsigned long r = strtoul(v, &end, 0);
    bool ok = errno == 0 && end != v && *end == '\0' && v[0] != '-' && v[0] != '+' && r <= max;
    free(v);
    *out = r;
    return ok;
}

static char *node_dump(xmlDoc *doc, xmlNode *n)
{
    xmlBufferPtr b = xmlBufferCreate();
    if (!b)
        return NULL;
    char *r = NULL;
    if (xmlNodeDump(b, doc, n, 0, 0) >= 0)
        r = xstrdup((const char *)xmlBufferContent(b));
    xmlBufferFree(b);
    return r;
}

static void add_passthrough(vm_t *out, xmlDoc *doc, const xmlNode *dev, const char *what,
                            const char *where, errs_t *errs, int *rc)
{
    out->hostpci = xrealloc(out->hostpci, (out->n_hostpci + 1) * sizeof(*out->hostpci));
    hostpci_t *h = &out->hostpci[out->n_hostpci];
    memset(h, 0, sizeof(*h));
    h->index = (int)out->n_hostpci;
    out->n_hostpci++;

    xmlNode *a = (xmlNode *)child(child(dev, "source"), "address");
    if (!a) {
        h->raw = xstrdup("");
        errs_add(errs, where, "%s %d (a PCI passthrough) has no <source><address>", what, h->index);
        strv_add(&h->problems, "has no host PCI address in its <source>: libvirt will refuse to start the domain");
        *rc = -EINVAL;
        return;
    }
    h->raw = node_dump(doc, a);
    if (!h->raw)
        h->raw = xstrdup("");
    unsigned long dom, bus, slot, fn;
    if (!addr_field(a, "domain", 0xffffffffUL, &dom) || !addr_field(a, "bus", 0xff, &bus) ||
        !addr_field(a, "slot", 0x1f, &slot) || !addr_field(a, "function", 7, &fn)) {
        errs_add(errs, where, "%s %d has an invalid PCI address", what, h->index);
        strv_add(&h->problems, "has an invalid host PCI address: libvirt will refuse to start the domain");
        *rc = -EINVAL;
        return;
    }
    strv_take(&h->addresses, xasprintf("%04lx:%02lx:%02lx.%lx", dom, bus, slot, fn));
}

static void parse_domain(xmlDoc *doc, const xmlNode *root, vm_t *out, const char *where,
                         errs_t *errs, int *rc)
{
    const xmlNode *n = child(root, "name");
    if (n)
        out->name = text_trimmed(n);
    if (out->name)
        out->id = xstrdup(out->name);
    else {
        errs_add(errs, where, "the domain has no <name>");
        *rc = -EINVAL;
    }
    const xmlNode *type = child(child(root, "os"), "type");
    if (type)
        out->machine = attr(type, "machine");

    for (const xmlNode *devs = root->children; devs; devs = devs->next) {
        if (!is_elem(devs, "devices"))
            continue;
        for (const xmlNode *d = devs->children; d; d = d->next) {
            if (is_elem(d, "hostdev")) {
                char *mode = attr(d, "mode");
                char *t = attr(d, "type");
                bool pci = (!mode || strcmp(mode, "subsystem") == 0) && t && strcmp(t, "pci") == 0;
                free(mode);
                free(t);
                if (pci)
                    add_passthrough(out, doc, d, "hostdev", where, errs, rc);
            } else if (is_elem(d, "interface")) {
                char *t = attr(d, "type");
                bool hostdev = t && strcmp(t, "hostdev") == 0;
                free(t);
                if (hostdev)
                    add_passthrough(out, doc, d, "hostdev", where, errs, rc);
            }
        }
    }
}

int libvirt_domain_parse_at(const char *buf, size_t len, const char *where, vm_t *out,
                            errs_t *errs)
{
    out->source = "libvirt";
    out->running = -1;
    if (!where)
        where = "libvirt domain XML";
    if (len > LIBVIRT_XML_MAX || len > INT_MAX) {
        errs_add(errs, where, "the domain XML is %zu bytes, more than the %u this reader accepts", len,
                 LIBVIRT_XML_MAX);
        vm_judge(out);
        return -EINVAL;
    }
    if (len == 0) {
        errs_add(errs, where, "the file is empty");
        vm_judge(out);
        return -EINVAL;
    }
    if (memmem(buf, len, "<!DOCTYPE", 9) || memmem(buf, len, "<!ENTITY", 8)) {
        errs_add(errs, where, "the file has a DOCTYPE or ENTITY declaration, which libvirt never "
                              "writes; refused");
        vm_judge(out);
        return -EINVAL;
    }

    xmlInitParser();
    xmlGenericErrorFunc old_generic = xmlGenericError;
    void *old_generic_ctx = xmlGenericErrorContext;
    xmlStructuredErrorFunc old_structured = xmlStructuredError;
    void *old_structured_ctx = xmlStructuredErrorContext;
    xmlSetGenericErrorFunc(NULL, silent_generic);
    xmlSetStructuredErrorFunc(NULL, silent_structured);

    int rc = 0;
    xmlDoc *doc = xmlReadMemory(buf, (int)len, "domain.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) {
        xmlErrorPtr e = xmlGetLastError();
        if (e && e->message) {
            size_t ml = strlen(e->message);
            while (ml && e->message[ml - 1] == '\n')
                ml--;
            errs_add(errs, where, "malformed XML at line %d: %.*s", e->line, (int)(ml > 200 ? 200 : ml),
                     e->message);
        } else {
            errs_add(errs, where, "malformed XML");
        }
        rc = -EINVAL;
    } else {
        const xmlNode *root = xmlDocGetRootElement(doc);
        if (!is_elem(root, "domain")) {
            errs_add(errs, where, "the root element is not <domain>");
            rc = -EINVAL;
        } else {
            parse_domain(doc, root, out, where, errs, &rc);
        }
        xmlFreeDoc(doc);
    }
    xmlResetLastError();
    xmlSetGenericErrorFunc(old_generic_ctx, old_generic);
    xmlSetStructuredErrorFunc(old_structured_ctx, old_structured);
    vm_judge(out);
    return rc;
}

int libvirt_domain_parse(const char *buf, size_t len, vm_t *out, errs_t *errs)
{
    return libvirt_domain_parse_at(buf, len, NULL, out, errs);
}
