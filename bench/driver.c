/*
 * The benchmark driver (compiled at run time by bench/drivers.py; bench/driver.py is the same
 * driver in Python, used when no C compiler is found).
 *
 * It speaks INDI on stdin/stdout and owns one device, "Bench". It answers every getProperties with
 * its definitions, and a client drives it with newNumberVector:
 *   burst (count N)          -> N setNumberVector "seq" with sequence numbers 0..N-1
 *   blob  (count M, size S, enclen E)
 *                            -> M setBLOBVector "image" of S bytes, base64 in 72-character lines, with
 *                               the enclen attribute as libindi writes it (E = 1, the default) or
 *                               without it, as drivers outside libindi write them (E = 0)
 *   echo  (value V)          -> one setNumberVector "echo" carrying V back (round trips)
 * Output is built in a large buffer and written with plain write(2), so that the driver is never
 * what limits the server under test.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OUT_SIZE (1 << 20)
#define STAMP "2024-01-01T00:00:00"

static char out[OUT_SIZE];
static size_t out_len;

static void write_all(const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(1, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            exit(0); /* the server went away */
        }
        p += w;
        n -= (size_t)w;
    }
}

static void flush_out(void) {
    write_all(out, out_len);
    out_len = 0;
}

static void put(const char *p, size_t n) {
    if (out_len + n > OUT_SIZE) flush_out();
    if (n > OUT_SIZE) {
        write_all(p, n);
        return;
    }
    memcpy(out + out_len, p, n);
    out_len += n;
}

static const char DEFS[] =
    "<defNumberVector device=\"Bench\" name=\"seq\" label=\"Sequence\" group=\"Bench\" state=\"Idle\" "
    "perm=\"ro\" timeout=\"60\" timestamp=\"" STAMP "\">\n"
    "    <defNumber name=\"seq\" label=\"Sequence\" format=\"%.0f\" min=\"0\" max=\"1e9\" step=\"1\">\n0\n"
    "    </defNumber>\n"
    "    <defNumber name=\"value\" label=\"Value\" format=\"%.3f\" min=\"0\" max=\"1e9\" step=\"0\">\n0\n"
    "    </defNumber>\n"
    "</defNumberVector>\n"
    "<defNumberVector device=\"Bench\" name=\"echo\" label=\"Echo\" group=\"Bench\" state=\"Idle\" "
    "perm=\"rw\" timeout=\"60\" timestamp=\"" STAMP "\">\n"
    "    <defNumber name=\"value\" label=\"Value\" format=\"%.0f\" min=\"0\" max=\"1e9\" step=\"1\">\n0\n"
    "    </defNumber>\n"
    "</defNumberVector>\n"
    "<defNumberVector device=\"Bench\" name=\"burst\" label=\"Burst\" group=\"Bench\" state=\"Idle\" "
    "perm=\"rw\" timeout=\"60\" timestamp=\"" STAMP "\">\n"
    "    <defNumber name=\"count\" label=\"Count\" format=\"%.0f\" min=\"0\" max=\"1e9\" step=\"1\">\n0\n"
    "    </defNumber>\n"
    "</defNumberVector>\n"
    "<defNumberVector device=\"Bench\" name=\"blob\" label=\"BLOB\" group=\"Bench\" state=\"Idle\" "
    "perm=\"rw\" timeout=\"60\" timestamp=\"" STAMP "\">\n"
    "    <defNumber name=\"count\" label=\"Count\" format=\"%.0f\" min=\"0\" max=\"1e9\" step=\"1\">\n0\n"
    "    </defNumber>\n"
    "    <defNumber name=\"size\" label=\"Size\" format=\"%.0f\" min=\"0\" max=\"1e9\" step=\"1\">\n0\n"
    "    </defNumber>\n"
    "    <defNumber name=\"enclen\" label=\"With enclen\" format=\"%.0f\" min=\"0\" max=\"1\" step=\"1\">\n1\n"
    "    </defNumber>\n"
    "</defNumberVector>\n"
    "<defBLOBVector device=\"Bench\" name=\"image\" label=\"Image\" group=\"Bench\" state=\"Idle\" "
    "perm=\"ro\" timeout=\"60\" timestamp=\"" STAMP "\">\n"
    "    <defBLOB name=\"image\" label=\"Image\"/>\n"
    "</defBLOBVector>\n";

/* The text of member `name` of the vector in [p, end), or NULL; its length in *len. */
static const char *member(const char *p, const char *end, const char *name, size_t *len) {
    char key1[64], key2[64];
    snprintf(key1, sizeof key1, "name=\"%s\"", name);
    snprintf(key2, sizeof key2, "name='%s'", name);
    const char *q = p;
    while (q < end) {
        const char *one = memmem(q, (size_t)(end - q), "<oneNumber", 10);
        if (!one) return NULL;
        const char *gt = memchr(one, '>', (size_t)(end - one));
        if (!gt) return NULL;
        size_t tag_len = (size_t)(gt - one);
        if (memmem(one, tag_len, key1, strlen(key1)) || memmem(one, tag_len, key2, strlen(key2))) {
            const char *text = gt + 1;
            const char *close = memmem(text, (size_t)(end - text), "</oneNumber", 11);
            if (!close) return NULL;
            while (text < close && (*text == ' ' || *text == '\n' || *text == '\t' || *text == '\r')) text++;
            const char *stop = close;
            while (stop > text && (stop[-1] == ' ' || stop[-1] == '\n' || stop[-1] == '\t' || stop[-1] == '\r'))
                stop--;
            *len = (size_t)(stop - text);
            return text;
        }
        q = gt;
    }
    return NULL;
}

static long member_long(const char *p, const char *end, const char *name, long fallback) {
    size_t len;
    const char *text = member(p, end, name, &len);
    if (!text || len == 0 || len > 30) return fallback;
    char tmp[32];
    memcpy(tmp, text, len);
    tmp[len] = 0;
    return (long)strtod(tmp, NULL);
}

/* The vector's name attribute (in its start tag) is `name`. */
static int vector_is(const char *p, const char *end, const char *name) {
    const char *gt = memchr(p, '>', (size_t)(end - p));
    if (!gt) return 0;
    char key1[64], key2[64];
    snprintf(key1, sizeof key1, " name=\"%s\"", name);
    snprintf(key2, sizeof key2, " name='%s'", name);
    size_t n = (size_t)(gt - p);
    return memmem(p, n, key1, strlen(key1)) || memmem(p, n, key2, strlen(key2));
}

static void burst(long count) {
    char msg[512];
    for (long i = 0; i < count; i++) {
        int n = snprintf(msg, sizeof msg,
                         "<setNumberVector device=\"Bench\" name=\"seq\" state=\"Ok\" timeout=\"60\" "
                         "timestamp=\"" STAMP "\">\n"
                         "    <oneNumber name=\"seq\">\n%ld\n    </oneNumber>\n"
                         "    <oneNumber name=\"value\">\n%ld.5\n    </oneNumber>\n"
                         "</setNumberVector>\n",
                         i, i * 3);
        put(msg, (size_t)n);
    }
    flush_out();
}

static char *blob_body;
static size_t blob_body_len, blob_raw_size, blob_enclen;

static void make_blob(size_t size) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (blob_body && blob_raw_size == size) return;
    free(blob_body);
    unsigned char *raw = malloc(size + 3);
    unsigned int x = 12345;
    for (size_t i = 0; i < size + 3; i++) {
        x = x * 1103515245u + 12345u;
        raw[i] = (unsigned char)(x >> 16);
    }
    size_t enclen = 4 * ((size + 2) / 3);
    blob_body = malloc(enclen + enclen / 72 + 2);
    size_t o = 0, col = 0, done = 0;
    for (size_t i = 0; i < size; i += 3) {
        unsigned int v = (unsigned int)raw[i] << 16;
        size_t left = size - i;
        if (left > 1) v |= (unsigned int)raw[i + 1] << 8;
        if (left > 2) v |= raw[i + 2];
        char quad[4] = {b64[(v >> 18) & 63], b64[(v >> 12) & 63], left > 1 ? b64[(v >> 6) & 63] : '=',
                        left > 2 ? b64[v & 63] : '='};
        for (int k = 0; k < 4; k++) {
            blob_body[o++] = quad[k];
            done++;
            if (++col == 72 && done < enclen) {
                blob_body[o++] = '\n';
                col = 0;
            }
        }
    }
    blob_body[o++] = '\n';
    free(raw);
    blob_body_len = o;
    blob_raw_size = size;
    blob_enclen = enclen;
}

static void blobs(long count, long size, int with_enclen) {
    if (size <= 0) size = 1;
    make_blob((size_t)size);
    char head[512], enclen_attr[64] = "";
    if (with_enclen) snprintf(enclen_attr, sizeof enclen_attr, " enclen=\"%zu\"", blob_enclen);
    static const char tail[] = "    </oneBLOB>\n</setBLOBVector>\n";
    for (long i = 0; i < count; i++) {
        int n = snprintf(head, sizeof head,
                         "<setBLOBVector device=\"Bench\" name=\"image\" state=\"Ok\" timeout=\"60\" "
                         "timestamp=\"" STAMP "\">\n"
                         "    <oneBLOB name=\"image\" size=\"%ld\" format=\".fits\"%s>\n",
                         size, enclen_attr);
        put(head, (size_t)n);
        put(blob_body, blob_body_len);
        put(tail, sizeof tail - 1);
    }
    flush_out();
}

static void echo(const char *p, const char *end) {
    size_t len = 0;
    const char *text = member(p, end, "value", &len);
    if (!text) {
        text = "0";
        len = 1;
    }
    char msg[512];
    int n = snprintf(msg, sizeof msg,
                     "<setNumberVector device=\"Bench\" name=\"echo\" state=\"Ok\" timeout=\"60\" "
                     "timestamp=\"" STAMP "\">\n    <oneNumber name=\"value\">\n%.*s\n    </oneNumber>\n"
                     "</setNumberVector>\n",
                     (int)(len < 64 ? len : 64), text);
    put(msg, (size_t)n);
    flush_out();
}

int main(void) {
    size_t cap = 1 << 16, len = 0;
    char *in = malloc(cap);
    for (;;) {
        if (len == cap) {
            cap *= 2;
            in = realloc(in, cap);
        }
        ssize_t r = read(0, in + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return 0;
        len += (size_t)r;
        size_t pos = 0;
        for (;;) {
            char *start = in + pos, *end = in + len;
            char *gp = memmem(start, (size_t)(end - start), "<getProperties", 14);
            char *nv = memmem(start, (size_t)(end - start), "<newNumberVector", 16);
            if (!gp && !nv) {
                /* keep a possible partial start tag */
                size_t keep = len - pos < 16 ? len - pos : 16;
                pos = len - keep;
                break;
            }
            if (gp && (!nv || gp < nv)) {
                char *gt = memchr(gp, '>', (size_t)(end - gp));
                if (!gt) {
                    pos = (size_t)(gp - in);
                    break;
                }
                put(DEFS, sizeof DEFS - 1);
                flush_out();
                pos = (size_t)(gt + 1 - in);
            } else {
                char *close = memmem(nv, (size_t)(end - nv), "</newNumberVector>", 18);
                if (!close) {
                    pos = (size_t)(nv - in);
                    break;
                }
                if (vector_is(nv, close, "burst")) {
                    burst(member_long(nv, close, "count", 0));
                } else if (vector_is(nv, close, "blob")) {
                    blobs(member_long(nv, close, "count", 0), member_long(nv, close, "size", 0),
                          member_long(nv, close, "enclen", 1) != 0);
                } else if (vector_is(nv, close, "echo")) {
                    echo(nv, close);
                }
                pos = (size_t)(close + 18 - in);
            }
        }
        memmove(in, in + pos, len - pos);
        len -= pos;
    }
}
