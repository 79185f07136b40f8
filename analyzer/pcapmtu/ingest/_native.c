/*
 * pcapmtu.ingest._native: the per-record hot loops in C, optional.
 *
 * Why: on a real one-million-packet capture the columnar numpy decoder spends most of its time in call
 * overhead on small arrays, and the record walks, address and 5-tuple interning and the per-connection TCP
 * state are sequential loops numpy cannot vectorize, or does with a few dozen array operations per slice.
 * Fifteen entry points, each the C twin of a Python function that stays the reference:
 *
 *   walk_pcap            the pcap record walk              formats/pcap.py: _walk_words, _walk_struct
 *   epb_run              a run of pcapng packet blocks     formats/pcapng.py: _Walker._epb_run
 *   decode               the header decoder, common shapes decode.py: _decode_numpy
 *   factorize_addresses  one address side of a batch       packets.py: _AddressTable.intern
 *   tuple_ids            5-tuple interning                 tcp/connections.py: tuple_ids
 *   tcp_segments         the per-segment analysis          tcp/segments.py: _analyze_numpy
 *   tcp_aggregates       the flows table's aggregates      tcp/flows.py: _aggregates_numpy
 *   dns_rows             one DNS message, common shapes    rare_layers.py: _dns_rows (dpkt)
 *   dns_index            the distinct DNS messages         rare_layers.py: _dns_index
 *   dns_columns          their rows, as columns            rare_layers.py: dns_messages
 *   first_cumulative_ack, sack_covered, first_later_copy
 *                        a data segment's fate's searches   diagnose/delivery.py: the functions named so
 *   turn_state           whose turn it was at a cut         diagnose/turns.py: _turn_at
 *   conn_order           rows by connection, then a key     diagnose/rowkeys.py: conn_order (np.lexsort)
 *
 * Nothing here decides anything new: every rule is the one in those functions, and tests/test_native.py
 * checks that both give identical tables on every capture and on fuzzed packets, segments and files. The
 * package works without this module (pure numpy); native.ENABLED is the one switch (PCAPMTU_PURE=1 sets it
 * off).
 *
 * The decoder takes the common shapes only (Ethernet with VLAN tags, Linux cooked v1/v2, raw IP; sound
 * IPv4 or IPv6 without extension headers; TCP, UDP, ICMP). A row with anything else (an error status,
 * an overlay, IPv6 extension headers, PPPoE, MPLS, NULL/LOOP) is returned as a "fallback" row, which
 * decode.py decodes with numpy, so rare and hostile shapes keep exactly one implementation.
 *
 * No numpy C API: arrays arrive as buffers, variable-length results leave as bytes objects.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <math.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>

/* The columns the decoder writes, in this order: X(index, name, numpy dtype, C type). The enum, the item sizes
 * decode() checks, the type SET() writes and COLUMN_LAYOUT all come from this one list. COLUMN_LAYOUT tells
 * Python (name, dtype, C item size, C type signed) per column: decode.py switches the core off when it differs
 * from decode.COLUMNS (typed by schema.PACKETS; a stale build), tests/test_native.py compares the two. */
#define DECODED_COLUMNS(X) \
    X(C_LINKTYPE,      "linktype",     "u2", uint16_t)  \
    X(C_IFINDEX,       "ifindex",      "i4", int32_t)   \
    X(C_PKTTYPE,       "pkttype",      "i1", int8_t)    \
    X(C_ENCAP,         "encap",        "u1", uint8_t)   \
    X(C_OUTER_IP_LEN,  "outer_ip_len", "u4", uint32_t)  \
    X(C_IPV,           "ipv",          "u1", uint8_t)   \
    X(C_IP_LEN,        "ip_len",       "u4", uint32_t)  \
    X(C_IP_ID,         "ip_id",        "u4", uint32_t)  \
    X(C_DF,            "df",           "b1", uint8_t)   \
    X(C_FRAG,          "frag",         "b1", uint8_t)   \
    X(C_FRAG_OFF,      "frag_off",     "u2", uint16_t)  \
    X(C_TTL,           "ttl",          "u1", uint8_t)   \
    X(C_PROTO,         "proto",        "u1", uint8_t)   \
    X(C_SPORT,         "sport",        "u2", uint16_t)  \
    X(C_DPORT,         "dport",        "u2", uint16_t)  \
    X(C_TCP_FLAGS,     "tcp_flags",    "u2", uint16_t)  \
    X(C_SEQ,           "seq",          "u4", uint32_t)  \
    X(C_ACK,           "ack",          "u4", uint32_t)  \
    X(C_WIN,           "win",          "u2", uint16_t)  \
    X(C_TCP_HDR_LEN,   "tcp_hdr_len",  "u1", uint8_t)   \
    X(C_PAYLOAD_LEN,   "payload_len",  "i4", int32_t)   \
    X(C_PAYLOAD0,      "payload0",     "i2", int16_t)   \
    X(C_PAYLOAD_OFF,   "payload_off",  "u2", uint16_t)  \
    X(C_MSS,           "mss",          "u2", uint16_t)  \
    X(C_WSCALE,        "wscale",       "i1", int8_t)    \
    X(C_SACK_PERM,     "sack_perm",    "b1", uint8_t)   \
    X(C_SACK_BLOCKS,   "sack_blocks",  "u1", uint8_t)   \
    X(C_TSVAL,         "tsval",        "u4", uint32_t)  \
    X(C_TSECR,         "tsecr",        "u4", uint32_t)  \
    X(C_HAS_TS,        "has_ts",       "b1", uint8_t)   \
    X(C_ICMP_TYPE,     "icmp_type",    "i2", int16_t)   \
    X(C_ICMP_CODE,     "icmp_code",    "i2", int16_t)   \
    X(C_STATUS,        "status",       "u1", uint8_t)

enum {
#define AS_INDEX(index, name, dtype, ctype) index,
    DECODED_COLUMNS(AS_INDEX)
#undef AS_INDEX
    N_COLUMNS
};
#define AS_TYPEDEF(index, name, dtype, ctype) typedef ctype index##_t;
DECODED_COLUMNS(AS_TYPEDEF)
#undef AS_TYPEDEF
static const struct {
    const char *name, *dtype;
    Py_ssize_t itemsize;
    int is_signed;
} LAYOUT[N_COLUMNS] = {
#define AS_LAYOUT(index, name, dtype, ctype) {name, dtype, sizeof(ctype), (ctype)-1 < (ctype)1},
    DECODED_COLUMNS(AS_LAYOUT)
#undef AS_LAYOUT
};

#define ET_IPV4 0x0800
#define ET_IPV6 0x86DD

static inline uint32_t be16(const uint8_t *p) { return ((uint32_t)p[0] << 8) | p[1]; }
static inline uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t be64(const uint8_t *p) { return ((uint64_t)be32(p) << 32) | be32(p + 4); }

#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void)(p))
#endif

/* A walk from record to record learns where the next one starts only from the one before, so without help it
 * waits on memory at every record (40-80 ns each as the host's load goes, most of the walk). Asking for the
 * cache lines a few KiB ahead of the walk, once each, lets the memory system stream them in: *fetched is where
 * the lines not asked for yet begin. */
#define WALK_AHEAD 4096
static inline void prefetch_ahead(const uint8_t *b, int64_t n, int64_t pos, int64_t *fetched)
{
    int64_t until = pos + WALK_AHEAD < n ? pos + WALK_AHEAD : n;
    if (*fetched < pos)
        *fetched = pos;
    for (; *fetched < until; *fetched += 64)
        PREFETCH(b + *fetched);
}

/* A growable array of fixed-size items, handed to Python as one bytes object. */
typedef struct {
    char *data;
    Py_ssize_t len, cap, item;
} Vec;

static int vec_push(Vec *v, const void *item)
{
    if (v->len == v->cap) {
        Py_ssize_t cap = v->cap ? v->cap * 2 : 256;
        char *data = PyMem_Realloc(v->data, (size_t)(cap * v->item));
        if (!data) {
            PyErr_NoMemory();
            return -1;
        }
        v->data = data;
        v->cap = cap;
    }
    memcpy(v->data + v->len * v->item, item, (size_t)v->item);
    v->len++;
    return 0;
}

static PyObject *vec_bytes(Vec *v)
{
    PyObject *out = PyBytes_FromStringAndSize(v->data ? v->data : "", v->len * v->item);
    PyMem_Free(v->data);
    v->data = NULL;
    return out;
}

/* ------------------------------------------------------------------------------------ pcap record walk */
/* Record starts fully inside buf: the loop of formats.pcap._walk_words/_walk_struct, which also stops before a
 * record claiming more than max_record bytes (there the Python walks trim afterwards). Beside each start, the
 * four fields of its record header (seconds, fraction, and the two lengths, in file order and byte order) as
 * int64: what formats.pcap._batch would otherwise gather again from the chunk, one cache miss per record.
 * walk_pcap(buf, rec_hdr, at, big_endian, max_record) -> (starts, stop position, fields), as int64 bytes */
static inline uint32_t u32_in(const uint8_t *p, int big)
{
    return big ? be32(p) : ((uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24));
}

/* What a walk hands back: the record starts and, beside each, the first `width` 32-bit words of its header as
 * int64. Filled without the GIL, so with plain realloc. */
typedef struct {
    int64_t *starts, *fields;
    int64_t count, room;
    int width;
} Walked;

static int walked_push(Walked *w, int64_t pos, const uint8_t *p, int big)
{
    if (w->count == w->room) {
        int64_t more = w->room ? w->room * 2 : 4096;
        int64_t *starts = realloc(w->starts, (size_t)more * sizeof(int64_t));
        if (!starts)
            return -1;
        w->starts = starts;
        int64_t *fields = realloc(w->fields, (size_t)more * (size_t)w->width * sizeof(int64_t));
        if (!fields)
            return -1;
        w->fields = fields;
        w->room = more;
    }
    w->starts[w->count] = pos;
    for (int k = 0; k < w->width; k++)
        w->fields[w->count * w->width + k] = u32_in(p + 4 * k, big);
    w->count++;
    return 0;
}

/* (starts, stop position, fields) as bytes, or NULL with MemoryError when a push failed; frees the arrays. */
static PyObject *walked_result(Walked *w, int failed, int64_t pos)
{
    PyObject *result = NULL;
    if (failed)
        PyErr_NoMemory();
    else
        result = Py_BuildValue("(y#Ly#)", w->starts ? (const char *)w->starts : "", (Py_ssize_t)(w->count * 8),
                               (long long)pos, w->fields ? (const char *)w->fields : "",
                               (Py_ssize_t)(w->count * 8 * w->width));
    free(w->starts);
    free(w->fields);
    return result;
}

static PyObject *walk_pcap(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t rec_hdr, at;
    int big;
    long long max_record;
    if (!PyArg_ParseTuple(args, "y*nnpL", &view, &rec_hdr, &at, &big, &max_record))
        return NULL;
    if (rec_hdr < 16 || at < 0 || at + 4 > rec_hdr) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "walk_pcap: a record header holds the four fields and the length");
        return NULL;
    }
    const uint8_t *b = view.buf;
    int64_t n = view.len, pos = 0, limit = n - rec_hdr, fetched = 0;
    Walked walked = {NULL, NULL, 0, 0, 4};
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    while (pos <= limit) {
        prefetch_ahead(b, n, pos, &fetched);
        uint32_t len = u32_in(b + pos + at, big);
        int64_t end = pos + rec_hdr + (int64_t)len;
        if (end > n || (long long)len > max_record) /* cut by the chunk's end, or absurd: the caller judges */
            break;
        if ((failed = walked_push(&walked, pos, b + pos, big) < 0))
            break;
        pos = end;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return walked_result(&walked, failed, pos);
}


/* Consecutive little-endian enhanced packet blocks from pos: the loop of formats.pcapng._Walker._epb_run. Beside
 * each block's start, its first seven words (type, length, interface, timestamp high and low, captured and
 * original length) as int64, which _epb_run would otherwise gather again from the chunk.
 * epb_run(buf, pos, max_record) -> (int64 block starts as bytes, stop position, int64 words as bytes) */
static PyObject *epb_run(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t pos;
    long long max_record;
    if (!PyArg_ParseTuple(args, "y*nL", &view, &pos, &max_record))
        return NULL;
    const uint8_t *b = view.buf;
    int64_t n = view.len, fetched = pos;
    Walked walked = {NULL, NULL, 0, 0, 7};
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    while (pos >= 0 && pos + 32 <= n) {
        prefetch_ahead(b, n, pos, &fetched);
        uint32_t type = u32_in(b + pos, 0), blen = u32_in(b + pos + 4, 0);
        if (type != 6 || blen < 32 || (blen & 3) || (long long)blen > max_record || pos + (int64_t)blen > n)
            break;
        if ((failed = walked_push(&walked, pos, b + pos, 0) < 0))
            break;
        pos += blen;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return walked_result(&walked, failed, pos);
}

/* ------------------------------------------------------------------------------------------- decoding */
typedef struct {
    const uint8_t *b;
    char *col[N_COLUMNS];
    uint64_t *addr; /* (n, 4) */
    Vec fallback, sack_rows, sack_left, sack_right, rare_rows;
    PyObject *rare_bytes; /* list */
} Decoder;

#define SET(c, i, v) (((c##_t *)d->col[c])[i] = (c##_t)(v)) /* column c of row i, in its C type */

typedef struct {
    int64_t row;
    int n;
    uint32_t left[4], right[4];
} SackSeen;

/* TCP options (RFC 9293 3.1), as decode._tcp_options walks them: at most 40 options, malformed ends it. */
static void tcp_options(Decoder *d, int64_t i, int64_t c, int64_t oend, SackSeen *sk)
{
    const uint8_t *b = d->b;
    for (int step = 0; step < 40 && c < oend; step++) {
        uint8_t kind = b[c];
        if (kind == 1) { /* NOP */
            c += 1;
            continue;
        }
        if (kind == 0 || c + 1 >= oend)
            break;
        int64_t ln = b[c + 1];
        if (ln < 2 || c + ln > oend)
            break;
        if (kind == 2 && ln == 4) {
            SET(C_MSS, i, be16(b + c + 2));
        } else if (kind == 3 && ln == 3) {
            SET(C_WSCALE, i, b[c + 2] < 127 ? b[c + 2] : 127);
        } else if (kind == 8 && ln == 10) {
            SET(C_TSVAL, i, be32(b + c + 2));
            SET(C_TSECR, i, be32(b + c + 6));
            SET(C_HAS_TS, i, 1);
        } else if (kind == 4) {
            SET(C_SACK_PERM, i, 1);
        } else if (kind == 5 && ln >= 10) {
            int nb = (int)((ln - 2) / 8);
            if (nb > 4)
                nb = 4;
            SET(C_SACK_BLOCKS, i, nb);
            for (int k = 0; k < nb && sk->n < 4; k++) { /* 40 option bytes hold at most 4 blocks */
                sk->left[sk->n] = be32(b + c + 2 + 8 * k);
                sk->right[sk->n] = be32(b + c + 6 + 8 * k);
                sk->n++;
            }
        }
        c += ln;
    }
}

/* One row; returns 1 when the row needs the numpy decoder, 0 when done, -1 on a Python error. */
static int decode_row(Decoder *d, int64_t i, int64_t s, int64_t e, int64_t lt, SackSeen *sk,
                      int64_t *rare_a, int64_t *rare_b)
{
    const uint8_t *b = d->b;
    int64_t l3;
    uint32_t et;
    *rare_a = *rare_b = -1;
    switch (lt) {
    case 1: { /* Ethernet, up to three VLAN tags (802.1Q, 802.1ad) */
        if (s + 14 > e)
            return 1;
        et = be16(b + s + 12);
        int64_t hdr = 14;
        for (int k = 0; k < 3; k++) {
            if (et != 0x8100 && et != 0x88A8 && et != 0x9100)
                break;
            if (s + hdr + 4 > e)
                return 1;
            et = be16(b + s + hdr + 2);
            hdr += 4;
        }
        if (et == 0x8864 || et == 0x8847 || et == 0x8848) /* PPPoE, MPLS */
            return 1;
        l3 = s + hdr;
        break;
    }
    case 113: /* Linux cooked v1 */
        if (s + 16 > e)
            return 1;
        SET(C_PKTTYPE, i, (uint8_t)be16(b + s));
        et = be16(b + s + 14);
        l3 = s + 16;
        break;
    case 276: /* Linux cooked v2 */
        if (s + 20 > e)
            return 1;
        SET(C_IFINDEX, i, be32(b + s + 4));
        SET(C_PKTTYPE, i, b[s + 10]);
        et = be16(b + s);
        l3 = s + 20;
        break;
    case 12:
    case 14:
    case 101: /* raw IP: the version nibble says which */
        if (s + 1 > e)
            return 1;
        et = (b[s] >> 4) == 4 ? ET_IPV4 : (b[s] >> 4) == 6 ? ET_IPV6 : 0;
        l3 = s;
        break;
    case 228:
    case 229:
        if (s + 1 > e)
            return 1;
        et = lt == 228 ? ET_IPV4 : ET_IPV6;
        l3 = s;
        break;
    default: /* NULL/LOOP and unsupported link types */
        return 1;
    }

    int64_t l4, l4_len;
    uint32_t proto;
    if (et == ET_IPV4) {
        if (l3 + 20 > e)
            return 1;
        const uint8_t *h = b + l3;
        int64_t ihl = (h[0] & 0x0F) * 4, total = be16(h + 2);
        if (total == 0)
            total = e - l3; /* TSO/GSO super-packet */
        if ((h[0] >> 4) != 4 || ihl < 20 || total < ihl)
            return 1;
        uint32_t flags = be16(h + 6), frag_off = (flags & 0x1FFF) * 8;
        proto = h[9];
        SET(C_IPV, i, 4);
        SET(C_IP_LEN, i, total);
        SET(C_IP_ID, i, be16(h + 4));
        SET(C_DF, i, (flags & 0x4000) != 0);
        SET(C_FRAG, i, (flags & 0x2000) != 0 || frag_off > 0);
        SET(C_FRAG_OFF, i, frag_off);
        SET(C_TTL, i, h[8]);
        SET(C_PROTO, i, proto);
        uint64_t *a = d->addr + 4 * i;
        a[0] = 0;
        a[1] = be32(h + 12) | 0xFFFF00000000ULL;
        a[2] = 0;
        a[3] = be32(h + 16) | 0xFFFF00000000ULL;
        if (frag_off != 0 || total <= ihl)
            return 0;
        l4 = l3 + ihl;
        l4_len = total - ihl;
    } else if (et == ET_IPV6) {
        if (l3 + 40 > e)
            return 1;
        const uint8_t *h = b + l3;
        if ((h[0] >> 4) != 6)
            return 1;
        int64_t plen = be16(h + 4);
        if (plen == 0)
            plen = e - l3 - 40 > 0 ? e - l3 - 40 : 0; /* jumbogram / TSO */
        proto = h[6];
        switch (proto) { /* extension headers: the numpy decoder walks them */
        case 0: case 43: case 44: case 51: case 60: case 135: case 139: case 140:
            return 1;
        }
        SET(C_IPV, i, 6);
        SET(C_IP_LEN, i, plen + 40);
        SET(C_TTL, i, h[7]);
        SET(C_PROTO, i, proto);
        uint64_t *a = d->addr + 4 * i;
        a[0] = be64(h + 8);
        a[1] = be64(h + 16);
        a[2] = be64(h + 24);
        a[3] = be64(h + 32);
        if (proto == 59 || plen <= 0)
            return 0;
        l4 = l3 + 40;
        l4_len = plen;
    } else {
        return 0; /* not IP: link columns only */
    }

    const uint8_t *t = b + l4;
    if (proto == 6) {
        if (l4 + 20 > e)
            return 1;
        int64_t doff = (t[12] >> 4) * 4;
        if (doff < 20 || doff > l4_len)
            return 1;
        int64_t payload = l4_len - doff;
        SET(C_SPORT, i, be16(t));
        SET(C_DPORT, i, be16(t + 2));
        SET(C_SEQ, i, be32(t + 4));
        SET(C_ACK, i, be32(t + 8));
        SET(C_TCP_FLAGS, i, be16(t + 12) & 0x0FFF);
        SET(C_WIN, i, be16(t + 14));
        SET(C_TCP_HDR_LEN, i, doff);
        SET(C_PAYLOAD_LEN, i, payload);
        SET(C_PAYLOAD0, i, payload > 0 && l4 + doff + 1 <= e ? (int16_t)t[doff] : -1);
        SET(C_PAYLOAD_OFF, i, l4 + doff - s < 65535 ? l4 + doff - s : 65535);
        tcp_options(d, i, l4 + 20, l4 + doff < e ? l4 + doff : e, sk);
    } else if (proto == 17) {
        if (l4 + 8 > e)
            return 1;
        uint32_t sport = be16(t), dport = be16(t + 2);
        if (dport == 4789 || dport == 8472 || dport == 6081 || sport == 3544 || dport == 3544 ||
            sport == 1701 || dport == 1701)
            return 1; /* possibly an overlay: VXLAN, Geneve, Teredo, L2TP */
        SET(C_SPORT, i, sport);
        SET(C_DPORT, i, dport);
        SET(C_PAYLOAD_LEN, i, l4_len > 8 ? l4_len - 8 : 0);
        if (sport == 53 || dport == 53) {
            *rare_a = l4;
            *rare_b = l4 + l4_len < e ? l4 + l4_len : e;
        }
    } else if (proto == 1 || proto == 58) {
        if (l4 + 4 > e || l4_len < 4)
            return 1;
        uint32_t typ = t[0];
        SET(C_ICMP_TYPE, i, typ);
        SET(C_ICMP_CODE, i, t[1]);
        SET(C_PAYLOAD_LEN, i, l4_len > 8 ? l4_len - 8 : 0);
        /* errors that quote the offending packet, as decode.py's _icmp */
        int quoting = proto == 1 ? (typ == 3 || typ == 4 || typ == 11 || typ == 12) : (typ >= 1 && typ <= 4);
        if (quoting) {
            *rare_a = l4;
            *rare_b = l4 + l4_len < e ? l4 + l4_len : e;
        }
    } else if (proto == 47 || proto == 4 || proto == 41) {
        return 1; /* GRE, IP-in-IP */
    }
    return 0;
}

/* The records' starts are known: ask for the first two cache lines (the headers decoded) of the record this
 * many rows ahead, so they are in cache when its turn comes. */
#define DECODE_AHEAD 8
/* decode(buf, data_off, caplen, linktype, columns, addr) ->
 *   (fallback rows, sack rows, sack left, sack right, rare rows, rare bytes list) */
static PyObject *decode(PyObject *self, PyObject *args)
{
    Py_buffer buf, off, cap, lts, addr;
    PyObject *columns;
    Py_buffer cols[N_COLUMNS];
    int ncols = 0;
    PyObject *result = NULL;
    memset(&buf, 0, sizeof buf);
    if (!PyArg_ParseTuple(args, "y*y*y*y*O!w*", &buf, &off, &cap, &lts, &PyTuple_Type, &columns, &addr))
        return NULL;
    Py_ssize_t n = off.len / 8;
    Decoder d;
    memset(&d, 0, sizeof d);
    d.fallback.item = d.sack_rows.item = d.rare_rows.item = sizeof(int64_t);
    d.sack_left.item = d.sack_right.item = sizeof(uint32_t);
    if (off.len != n * 8 || cap.len != n * 8 || lts.len != n * 8 || addr.len != n * 32 ||
        PyTuple_GET_SIZE(columns) != N_COLUMNS) {
        PyErr_SetString(PyExc_ValueError, "decode: arrays do not match the batch");
        goto done;
    }
    for (; ncols < N_COLUMNS; ncols++) {
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(columns, ncols), &cols[ncols], PyBUF_WRITABLE) < 0)
            goto done;
        if (cols[ncols].len != n * LAYOUT[ncols].itemsize) {
            ncols++;
            PyErr_Format(PyExc_ValueError, "decode: column %d has the wrong size", ncols - 1);
            goto done;
        }
        d.col[ncols] = cols[ncols].buf;
    }
    d.b = buf.buf;
    d.addr = addr.buf;
    d.rare_bytes = PyList_New(0);
    if (!d.rare_bytes)
        goto done;
    const int64_t *offs = off.buf, *caps = cap.buf, *ltv = lts.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i + DECODE_AHEAD < n && offs[i + DECODE_AHEAD] >= 0 && offs[i + DECODE_AHEAD] < buf.len - 128) {
            const uint8_t *next = d.b + offs[i + DECODE_AHEAD]; /* the headers of a record further on */
            PREFETCH(next);
            PREFETCH(next + 64);
        }
        int64_t s = offs[i], e = s + caps[i], ra, rb;
        SackSeen sk;
        sk.n = 0;
        int status = 1;
        if (s >= 0 && caps[i] >= 0 && e <= buf.len)
            status = decode_row(&d, i, s, e, ltv[i], &sk, &ra, &rb);
        if (status) {
            int64_t row = i;
            if (vec_push(&d.fallback, &row) < 0)
                goto done;
            continue;
        }
        for (int k = 0; k < sk.n; k++) {
            int64_t row = i;
            if (vec_push(&d.sack_rows, &row) < 0 || vec_push(&d.sack_left, &sk.left[k]) < 0 ||
                vec_push(&d.sack_right, &sk.right[k]) < 0)
                goto done;
        }
        if (ra >= 0) {
            int64_t row = i;
            PyObject *bytes = PyBytes_FromStringAndSize((const char *)d.b + ra, rb > ra ? rb - ra : 0);
            if (!bytes || vec_push(&d.rare_rows, &row) < 0 || PyList_Append(d.rare_bytes, bytes) < 0) {
                Py_XDECREF(bytes);
                goto done;
            }
            Py_DECREF(bytes);
        }
    }
    result = Py_BuildValue("(NNNNNO)", vec_bytes(&d.fallback), vec_bytes(&d.sack_rows),
                           vec_bytes(&d.sack_left), vec_bytes(&d.sack_right), vec_bytes(&d.rare_rows),
                           d.rare_bytes);
done:
    PyMem_Free(d.fallback.data);
    PyMem_Free(d.sack_rows.data);
    PyMem_Free(d.sack_left.data);
    PyMem_Free(d.sack_right.data);
    PyMem_Free(d.rare_rows.data);
    Py_XDECREF(d.rare_bytes);
    for (int k = 0; k < ncols; k++)
        PyBuffer_Release(&cols[k]);
    PyBuffer_Release(&buf);
    PyBuffer_Release(&off);
    PyBuffer_Release(&cap);
    PyBuffer_Release(&lts);
    PyBuffer_Release(&addr);
    return result;
}


/* ------------------------------------------------------------------------------ TCP segment analysis */
/* tcp.segments._analyze_numpy as one pass per connection; the rules and their order are documented there. */
#define NONE INT64_MAX
#define F_FIN 0x01
#define F_SYN 0x02
#define F_RST 0x04
#define F_ACK 0x10

static inline int64_t seq_diff(int64_t a, int64_t b) { return (int64_t)(int32_t)(uint32_t)(uint64_t)(a - b); }

typedef struct {
    const int64_t *key_lo, *key_hi, *flags, *seq, *ack, *plen, *ts, *win;
    const uint8_t *a_is_src;
    int64_t ooo_ns, fast_ns;
    int64_t *dirn, *rel, *rel_ack;
    uint8_t *retrans, *fast, *spurious, *ooo, *lost, *dup_ack, *zero_window, *keepalive;
    int64_t *first_syn, *first_synack, *irtt;
    uint8_t *client_is_a, *has_rtt;
    int64_t *nextseq, *dupack_run; /* scratch, per packet */
    int64_t *nextseq_ts;           /* scratch: exact ns, where nextseq is known */
} Tcp;

static void tcp_connection(Tcp *t, int64_t c, int64_t lo, int64_t hi)
{
    const int64_t *flags = t->flags;
    /* orientation: the SYN sender is the client; else the SYN-ACK receiver; else the higher port */
    int64_t syn = NONE, synack = NONE;
    for (int64_t p = lo; p < hi && (syn == NONE || synack == NONE); p++) {
        if ((flags[p] & F_SYN) && !(flags[p] & F_ACK) && syn == NONE)
            syn = p;
        if ((flags[p] & F_SYN) && (flags[p] & F_ACK) && synack == NONE)
            synack = p;
    }
    int64_t port_a = t->key_lo[c] & 0xFFFF, port_b = t->key_hi[c] & 0xFFFF; /* keys are per connection */
    int client_is_a = port_a == port_b ? t->a_is_src[lo] != 0 : port_a > port_b;
    if (synack != NONE)
        client_is_a = !t->a_is_src[synack];
    if (syn != NONE)
        client_is_a = t->a_is_src[syn] != 0;
    /* handshake RTT as Wireshark's iRTT: the latest SYN to the first later segment with ACK and without
     * SYN, either direction, a difference that is not positive not counting (tcp.segments._analyze_numpy) */
    int64_t hs_ack = NONE, last_syn = NONE, irtt = 0;
    for (int64_t p = lo; p < hi; p++) {
        int64_t d = (t->a_is_src[p] != 0) == client_is_a ? 0 : 1;
        t->dirn[p] = d;
        if ((flags[p] & F_SYN) && !(flags[p] & F_ACK))
            last_syn = p;
        else if (hs_ack == NONE && (flags[p] & F_ACK) && !(flags[p] & F_SYN) && last_syn != NONE &&
                 t->ts[p] > t->ts[last_syn]) {
            hs_ack = p;
            irtt = t->ts[p] - t->ts[last_syn];
        }
    }
    int has_rtt = hs_ack != NONE;
    t->first_syn[c] = syn;
    t->first_synack[c] = synack;
    t->client_is_a[c] = (uint8_t)client_is_a;
    t->irtt[c] = irtt;
    t->has_rtt[c] = (uint8_t)has_rtt;

    /* per direction: unwrap sequence numbers (pass 1), then the running state (pass 2) */
    int64_t isn[2] = {0, 0};
    for (int d = 0; d < 2; d++) {
        int64_t prev = -1, unwrapped = 0, base = 0;
        int has_base = 0;
        for (int64_t p = lo; p < hi; p++) {
            if (t->dirn[p] != d)
                continue;
            unwrapped = prev < 0 ? 0 : unwrapped + seq_diff(t->seq[p], t->seq[prev]);
            t->rel[p] = unwrapped;
            if (!has_base && (flags[p] & F_SYN)) {
                base = unwrapped;
                has_base = 1;
            }
            prev = p;
        }
        int64_t max_end = 0, first = -1;
        int64_t adv_ts = 0;
        prev = -1;
        for (int64_t p = lo; p < hi; p++) {
            if (t->dirn[p] != d)
                continue;
            int64_t f = flags[p], rel = t->rel[p] - base;
            t->rel[p] = rel;
            if (first < 0) {
                first = p;
                isn[d] = (int64_t)(uint32_t)(uint64_t)(t->seq[p] + base);
            }
            int64_t seglen = t->plen[p] + ((f & F_SYN) != 0) + ((f & F_FIN) != 0), seg_end = rel + seglen;
            int known = prev >= 0;
            int64_t nextseq = known ? max_end : NONE;
            int advanced = !known || seg_end > nextseq;
            t->nextseq[p] = nextseq;
            t->nextseq_ts[p] = adv_ts;
            if (advanced)
                adv_ts = t->ts[p];
            max_end = known && max_end > seg_end ? max_end : seg_end;
            int control = (f & (F_SYN | F_FIN | F_RST)) != 0;
            int64_t prev_ack = known ? t->ack[prev] : -1, prev_win = known ? t->win[prev] : -1;
            t->dup_ack[p] = t->plen[p] == 0 && t->win[p] > 0 && t->win[p] == prev_win && known && rel == nextseq &&
                            t->ack[p] == prev_ack && !control;
            t->keepalive[p] = seglen <= 1 && !control && known && rel == nextseq - 1;
            t->zero_window[p] = t->win[p] == 0 && !control;
            t->lost[p] = known && rel > nextseq && !(f & F_RST);
            prev = p;
        }
    }

    /* in capture order: the other direction's latest segment, duplicate-ACK runs, retransmissions */
    int64_t last[2] = {-1, -1}, run[2] = {0, 0}, prev_ack[2] = {-1, -1};
    int seen[2] = {0, 0};
    for (int64_t p = lo; p < hi; p++) {
        int64_t thres = irtt > 0 && p >= hs_ack ? irtt : t->ooo_ns;
        int64_t d = t->dirn[p], rv = last[1 - d], f = flags[p], plen = t->plen[p];
        int has_rev = rv >= 0;
        if (has_rev && t->keepalive[rv]) /* the ACK of a keep-alive repeats the ACK: not a duplicate */
            t->dup_ack[p] = 0;
        if (!seen[d] || t->ack[p] != prev_ack[d])
            run[d] = 0;
        run[d] += t->dup_ack[p];
        t->dupack_run[p] = run[d];
        seen[d] = 1;
        prev_ack[d] = t->ack[p];
        int64_t rev_ack = has_rev ? t->ack[rv] : 0, rev_ack_ts = has_rev ? t->ts[rv] : 0;
        int64_t rev_dupacks = has_rev ? t->dupack_run[rv] : 0;
        int64_t rel = t->rel[p], nextseq = t->nextseq[p];
        int64_t seglen = plen + ((f & F_SYN) != 0) + ((f & F_FIN) != 0);
        int carries = (plen > 0 || (f & (F_SYN | F_FIN))) && !t->keepalive[p];
        int not_advanced = nextseq != NONE && rel < nextseq && !(plen > 1 && rel == nextseq - 1);
        int fast = carries && not_advanced && rev_dupacks >= 2 && rev_ack == t->seq[p] &&
                   t->ts[p] - rev_ack_ts < t->fast_ns;
        int recent = nextseq != NONE && t->ts[p] - t->nextseq_ts[p] < thres;
        int spurious = carries && !fast && plen > 0 && rev_ack != 0 && seq_diff(t->seq[p] + plen, rev_ack) <= 0;
        int ooo = carries && not_advanced && !fast && !spurious && recent && nextseq != rel + seglen;
        int plain = carries && not_advanced && !fast && !ooo && !spurious;
        t->fast[p] = (uint8_t)fast;
        t->spurious[p] = (uint8_t)spurious;
        t->ooo[p] = (uint8_t)ooo;
        t->retrans[p] = (uint8_t)(fast || spurious || plain);
        t->rel_ack[p] = (f & F_ACK) ? seq_diff(t->ack[p], isn[1 - d]) : 0;
        last[d] = p;
    }
}

static int get_buffers(PyObject *tuple, Py_buffer *views, int count, Py_ssize_t n, const Py_ssize_t *itemsize)
{
    if (!PyTuple_Check(tuple) || PyTuple_GET_SIZE(tuple) != count) {
        PyErr_SetString(PyExc_ValueError, "tcp_segments: wrong number of output arrays");
        return -1;
    }
    for (int k = 0; k < count; k++) {
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(tuple, k), &views[k], PyBUF_WRITABLE) < 0 ||
            views[k].len != n * itemsize[k]) {
            if (!PyErr_Occurred()) {
                PyBuffer_Release(&views[k]);
                PyErr_Format(PyExc_ValueError, "tcp_segments: output %d has the wrong size", k);
            }
            for (int j = 0; j < k; j++)
                PyBuffer_Release(&views[j]);
            return -1;
        }
    }
    return 0;
}

/* tcp_segments(first, a_is_src, key_lo, key_hi (per connection), flags, seq, ack, plen, ts, win, ooo_ns, fast_ns,
 *              (dirn, rel, rel_ack, retrans, fast, spurious, ooo, lost, dup_ack, zero_window, keepalive),
 *              (first_syn, first_synack, client_is_a, irtt, has_rtt)) */
static PyObject *tcp_segments(PyObject *self, PyObject *args)
{
    Py_buffer in[10], out[11], conn[5];
    PyObject *outs, *conns;
    long long ooo_ns, fast_ns;
    static const Py_ssize_t out_size[11] = {8, 8, 8, 1, 1, 1, 1, 1, 1, 1, 1};
    static const Py_ssize_t conn_size[5] = {8, 8, 1, 8, 1};
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*y*y*y*LLO!O!", &in[0], &in[1], &in[2], &in[3], &in[4], &in[5],
                          &in[6], &in[7], &in[8], &in[9], &ooo_ns, &fast_ns, &PyTuple_Type, &outs, &PyTuple_Type,
                          &conns))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n_conn = in[0].len / 8, n = in[1].len;
    int have_out = 0, have_conn = 0;
    int64_t *scratch = NULL;
    for (int k = 2; k < 10; k++) {
        if (in[k].len != (k < 4 ? n_conn : n) * 8) {
            PyErr_SetString(PyExc_ValueError, "tcp_segments: input arrays differ in length");
            goto done;
        }
    }
    if (get_buffers(outs, out, 11, n, out_size) < 0)
        goto done;
    have_out = 1;
    if (get_buffers(conns, conn, 5, n_conn, conn_size) < 0)
        goto done;
    have_conn = 1;
    scratch = PyMem_Malloc((size_t)(n ? n : 1) * 3 * sizeof(int64_t));
    if (!scratch) {
        PyErr_NoMemory();
        goto done;
    }
    const int64_t *first = in[0].buf;
    for (Py_ssize_t c = 0; c < n_conn; c++) {
        if (first[c] < 0 || first[c] >= n || (c && first[c] <= first[c - 1]) || (c == 0 && first[c] != 0)) {
            PyErr_SetString(PyExc_ValueError, "tcp_segments: connection starts are not increasing");
            goto done;
        }
    }
    if (n && !n_conn) {
        PyErr_SetString(PyExc_ValueError, "tcp_segments: packets without connections");
        goto done;
    }
    Tcp t = {
        .a_is_src = in[1].buf, .key_lo = in[2].buf, .key_hi = in[3].buf, .flags = in[4].buf,
        .seq = in[5].buf, .ack = in[6].buf, .plen = in[7].buf, .ts = in[8].buf, .win = in[9].buf,
        .ooo_ns = ooo_ns, .fast_ns = fast_ns,
        .dirn = out[0].buf, .rel = out[1].buf, .rel_ack = out[2].buf, .retrans = out[3].buf,
        .fast = out[4].buf, .spurious = out[5].buf, .ooo = out[6].buf, .lost = out[7].buf,
        .dup_ack = out[8].buf, .zero_window = out[9].buf, .keepalive = out[10].buf,
        .first_syn = conn[0].buf, .first_synack = conn[1].buf, .client_is_a = conn[2].buf,
        .irtt = conn[3].buf, .has_rtt = conn[4].buf,
        .nextseq = scratch, .dupack_run = scratch + n, .nextseq_ts = scratch + 2 * n,
    };
    for (Py_ssize_t c = 0; c < n_conn; c++)
        tcp_connection(&t, c, first[c], c + 1 < n_conn ? first[c + 1] : n);
    result = Py_None;
    Py_INCREF(result);
done:
    PyMem_Free(scratch);
    if (have_out)
        for (int k = 0; k < 11; k++)
            PyBuffer_Release(&out[k]);
    if (have_conn)
        for (int k = 0; k < 5; k++)
            PyBuffer_Release(&conn[k]);
    for (int k = 0; k < 10; k++)
        PyBuffer_Release(&in[k]);
    return result;
}

/* Per-connection aggregates for the flows table: tcp.flows._aggregates_numpy, one pass per connection.
 * Row layout: flows.CONN_AGGREGATES, then flows.DIR_AGGREGATES for c2s, then for s2c. */
enum { A_IPV, A_FIRST_FRAME, A_LAST_FRAME, A_FIRST_TS, A_LAST_TS, A_MAX_GAP, A_IDLE_END, N_CONN_AGG };
enum {
    D_PKTS, D_BYTES, D_MAX_PAYLOAD, D_MAX_IP_LEN, D_MAX_OUTER, D_FLAGS, /* 8 per-segment flag counts */
    D_SACK_ACKS = D_FLAGS + 8, D_MAX_SACK_HOLE, D_FIRST_POS, D_FIRST_DATA_POS, D_LAST_DATA_POS, D_SENT,
    D_ACKED, D_BYTES_AFTER, D_MAX_AFTER, D_MAX_BEFORE, D_SYN_POS, D_SYNACK_POS, D_PURE_ACK_POS, D_DATA_POS,
    D_FIN_POS, D_RST_POS, D_RETRANS_POS, D_ZERO_WINDOW_POS, D_LOST_POS, N_DIR_AGG
};
#define N_AGG (N_CONN_AGG + 2 * N_DIR_AGG)
#define BIT_RETRANS 0
#define BIT_LOST 4
#define BIT_ZERO_WINDOW 6

static inline void keep_max(int64_t *slot, int64_t v) { if (v > *slot) *slot = v; }
static inline void keep_first(int64_t *slot, int64_t p) { if (*slot == NONE) *slot = p; }

/* numpy's "largest" is the maximum over all rows of the connection with 0 for the rows outside the mask:
 * 0 or more, unless every row is inside (values that can be negative: sent, acked). */
typedef struct {
    int64_t max, n;
} MaskedMax;
static inline void masked_add(MaskedMax *m, int64_t v)
{
    if (!m->n || v > m->max)
        m->max = v;
    m->n++;
}
static inline int64_t masked_result(const MaskedMax *m, int64_t rows)
{
    if (m->n == rows)
        return m->max;
    return m->n && m->max > 0 ? m->max : 0;
}

static void tcp_aggregate_connection(const int64_t *const *col, const uint8_t *bits, int64_t lo, int64_t hi,
                                     int64_t *row)
{
    const int64_t *dirn = col[0], *flags = col[1], *rel = col[2], *rel_ack = col[3], *plen = col[4],
                  *ts = col[5], *frame = col[6], *ip_len = col[7], *outer = col[8], *ipv = col[9], *hole = col[10];
    int64_t max_gap = 0, idle_end = NONE;
    for (int64_t p = lo + 1; p < hi; p++) {
        int64_t gap = ts[p] - ts[p - 1];
        if (gap > max_gap)
            max_gap = gap;
    }
    for (int64_t p = lo + 1; p < hi && max_gap > 0; p++) {
        if (ts[p] - ts[p - 1] == max_gap) {
            idle_end = p;
            break;
        }
    }
    row[A_IPV] = ipv[lo];
    row[A_FIRST_FRAME] = row[A_LAST_FRAME] = frame[lo];
    row[A_FIRST_TS] = row[A_LAST_TS] = ts[lo];
    row[A_MAX_GAP] = max_gap;
    row[A_IDLE_END] = idle_end;
    for (int d = 0; d < 2; d++) {
        int64_t *a = row + N_CONN_AGG + d * N_DIR_AGG;
        for (int k = 0; k < N_DIR_AGG; k++)
            a[k] = 0;
        for (int k = D_FIRST_POS; k <= D_LAST_DATA_POS; k++)
            a[k] = NONE;
        for (int k = D_SYN_POS; k <= D_LOST_POS; k++)
            a[k] = NONE;
    }
    MaskedMax sent[2] = {{0, 0}, {0, 0}}, acked[2] = {{0, 0}, {0, 0}};
    for (int64_t p = lo; p < hi; p++) {
        int64_t d = dirn[p], f = flags[p], len = plen[p];
        int64_t *a = row + N_CONN_AGG + d * N_DIR_AGG;
        keep_max(&row[A_IPV], ipv[p]);
        if (frame[p] < row[A_FIRST_FRAME])
            row[A_FIRST_FRAME] = frame[p];
        keep_max(&row[A_LAST_FRAME], frame[p]);
        if (ts[p] < row[A_FIRST_TS])
            row[A_FIRST_TS] = ts[p];
        keep_max(&row[A_LAST_TS], ts[p]);
        a[D_PKTS] += 1;
        a[D_BYTES] += len;
        keep_max(&a[D_MAX_PAYLOAD], len);
        keep_max(&a[D_MAX_IP_LEN], ip_len[p]);
        keep_max(&a[D_MAX_OUTER], outer[p]);
        for (int k = 0; k < 8; k++)
            a[D_FLAGS + k] += (bits[p] >> k) & 1;
        if (hole[p] > 0)
            a[D_SACK_ACKS] += 1;
        keep_max(&a[D_MAX_SACK_HOLE], hole[p]);
        keep_first(&a[D_FIRST_POS], p);
        if (len > 0) {
            keep_first(&a[D_FIRST_DATA_POS], p);
            a[D_LAST_DATA_POS] = p;
            masked_add(&sent[d], rel[p] + len);
            keep_first(&a[D_DATA_POS], p);
        }
        if (f & F_ACK)
            masked_add(&acked[1 - d], rel_ack[p] - 1);
        if (idle_end != NONE && p >= idle_end) {
            a[D_BYTES_AFTER] += len;
            keep_max(&a[D_MAX_AFTER], len);
        } else {
            keep_max(&a[D_MAX_BEFORE], len);
        }
        if ((f & F_SYN) && !(f & F_ACK))
            keep_first(&a[D_SYN_POS], p);
        if ((f & F_SYN) && (f & F_ACK))
            keep_first(&a[D_SYNACK_POS], p);
        if ((f & F_ACK) && len == 0 && !(f & (F_SYN | F_FIN | F_RST)))
            keep_first(&a[D_PURE_ACK_POS], p);
        if (f & F_FIN)
            keep_first(&a[D_FIN_POS], p);
        if (f & F_RST)
            keep_first(&a[D_RST_POS], p);
        if ((bits[p] >> BIT_RETRANS) & 1)
            keep_first(&a[D_RETRANS_POS], p);
        if ((bits[p] >> BIT_ZERO_WINDOW) & 1)
            keep_first(&a[D_ZERO_WINDOW_POS], p);
        if ((bits[p] >> BIT_LOST) & 1)
            keep_first(&a[D_LOST_POS], p);
    }
    for (int d = 0; d < 2; d++) {
        int64_t *a = row + N_CONN_AGG + d * N_DIR_AGG;
        a[D_SENT] = masked_result(&sent[d], hi - lo);
        a[D_ACKED] = masked_result(&acked[d], hi - lo);
    }
}

/* tcp_aggregates(first, dirn, flags, rel, rel_ack, plen, ts, frame, ip_len, outer, ipv, hole, bits, table) */
static PyObject *tcp_aggregates(PyObject *self, PyObject *args)
{
    Py_buffer in[13], table;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*y*y*y*y*y*y*w*", &in[0], &in[1], &in[2], &in[3], &in[4], &in[5],
                          &in[6], &in[7], &in[8], &in[9], &in[10], &in[11], &in[12], &table))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n_conn = in[0].len / 8, n = in[1].len / 8;
    const int64_t *first = in[0].buf;
    const int64_t *cols[11];
    for (int k = 1; k < 12; k++) {
        if (in[k].len != n * 8) {
            PyErr_SetString(PyExc_ValueError, "tcp_aggregates: input arrays differ in length");
            goto done;
        }
        cols[k - 1] = in[k].buf;
    }
    if (in[12].len != n || table.len != n_conn * N_AGG * 8) {
        PyErr_SetString(PyExc_ValueError, "tcp_aggregates: wrong size of the flag bits or of the table");
        goto done;
    }
    for (Py_ssize_t c = 0; c < n_conn; c++) {
        if ((c == 0 && first[c] != 0) || (c && first[c] <= first[c - 1]) || first[c] >= n) {
            PyErr_SetString(PyExc_ValueError, "tcp_aggregates: connection starts are not increasing");
            goto done;
        }
    }
    for (Py_ssize_t p = 0; p < n; p++) {
        if (cols[0][p] != 0 && cols[0][p] != 1) {
            PyErr_SetString(PyExc_ValueError, "tcp_aggregates: a direction is not 0 or 1");
            goto done;
        }
    }
    if (n && !n_conn) {
        PyErr_SetString(PyExc_ValueError, "tcp_aggregates: packets without connections");
        goto done;
    }
    for (Py_ssize_t c = 0; c < n_conn; c++)
        tcp_aggregate_connection(cols, in[12].buf, first[c], c + 1 < n_conn ? first[c + 1] : n,
                                 (int64_t *)table.buf + c * N_AGG);
    result = Py_None;
    Py_INCREF(result);
done:
    for (int k = 0; k < 13; k++)
        PyBuffer_Release(&in[k]);
    PyBuffer_Release(&table);
    return result;
}

/* ------------------------------------------------------------------------------- 5-tuple interning */
/* tcp.connections.tuple_ids in one pass: direction-free keys (address code << 16 | port, lower endpoint first) and
 * ids numbered in order of first appearance, from an open-addressing table over the distinct tuples. */
typedef struct {
    int64_t lo, hi;
    int32_t id; /* -1: empty slot */
} TupleSlot;

static inline uint64_t tuple_hash(int64_t lo, int64_t hi)
{
    uint64_t h = (uint64_t)lo * 0x9E3779B97F4A7C15ULL ^ ((uint64_t)hi + 0x632BE59BD9B4E019ULL) * 0xC2B2AE3D27D4EB4FULL;
    return h ^ (h >> 29);
}

/* Ids for pairs of 64-bit words, numbered in order of first appearance: open addressing, at most half full. */
typedef struct {
    TupleSlot *slots;
    size_t cap, used;
} PairTable;

static int pair_table_init(PairTable *t, size_t cap) /* cap: a power of two */
{
    t->slots = PyMem_Malloc(cap * sizeof(TupleSlot));
    t->cap = cap;
    t->used = 0;
    if (!t->slots) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t k = 0; k < cap; k++)
        t->slots[k].id = -1;
    return 0;
}

/* The id of (lo, hi), the next one if it is new; -1 with an exception set on failure. */
static int64_t pair_table_id(PairTable *t, int64_t lo, int64_t hi)
{
    if (2 * (t->used + 1) > t->cap) {
        size_t bigger = t->cap * 2;
        TupleSlot *grown = PyMem_Malloc(bigger * sizeof(TupleSlot));
        if (!grown) {
            PyErr_NoMemory();
            return -1;
        }
        for (size_t k = 0; k < bigger; k++)
            grown[k].id = -1;
        for (size_t k = 0; k < t->cap; k++) {
            if (t->slots[k].id < 0)
                continue;
            size_t j = tuple_hash(t->slots[k].lo, t->slots[k].hi) & (bigger - 1);
            while (grown[j].id >= 0)
                j = (j + 1) & (bigger - 1);
            grown[j] = t->slots[k];
        }
        PyMem_Free(t->slots);
        t->slots = grown;
        t->cap = bigger;
    }
    size_t j = tuple_hash(lo, hi) & (t->cap - 1);
    while (t->slots[j].id >= 0 && (t->slots[j].lo != lo || t->slots[j].hi != hi))
        j = (j + 1) & (t->cap - 1);
    if (t->slots[j].id < 0) {
        if (t->used >= INT32_MAX) {
            PyErr_SetString(PyExc_OverflowError, "too many distinct values to number");
            return -1;
        }
        t->slots[j].lo = lo;
        t->slots[j].hi = hi;
        t->slots[j].id = (int32_t)t->used++;
    }
    return t->slots[j].id;
}

/* tuple_ids(src_code int32[], sport uint16[], dst_code int32[], dport uint16[], rows int32[], a_is_src out,
 *           tup out int32) -> number of distinct tuples */
static PyObject *tuple_ids(PyObject *self, PyObject *args)
{
    Py_buffer src, sport, dst, dport, rows, a_is_src, tup;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*w*w*", &src, &sport, &dst, &dport, &rows, &a_is_src, &tup))
        return NULL;
    PyObject *result = NULL;
    PairTable table = {NULL, 0, 0};
    Py_ssize_t n_all = src.len / 4, n = rows.len / 4;
    if (sport.len != n_all * 2 || dst.len != n_all * 4 || dport.len != n_all * 2 || a_is_src.len != n ||
        tup.len != n * 4) {
        PyErr_SetString(PyExc_ValueError, "tuple_ids: arrays do not match");
        goto done;
    }
    const int32_t *sc = src.buf, *dc = dst.buf, *rv = rows.buf;
    const uint16_t *sp = sport.buf, *dp = dport.buf;
    uint8_t *is_src = a_is_src.buf;
    int32_t *ids = tup.buf;
    if (pair_table_init(&table, 1024) < 0)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t r = rv[i];
        if (r < 0 || r >= n_all) {
            PyErr_SetString(PyExc_ValueError, "tuple_ids: a row is out of range");
            goto done;
        }
        /* code << 16 | port, as numpy computes it in int64 (a code of -1, "no address", stays negative) */
        int64_t a = (int64_t)((uint64_t)(int64_t)sc[r] << 16) | sp[r];
        int64_t b = (int64_t)((uint64_t)(int64_t)dc[r] << 16) | dp[r];
        is_src[i] = a <= b;
        int64_t id = pair_table_id(&table, a <= b ? a : b, a <= b ? b : a);
        if (id < 0)
            goto done;
        ids[i] = (int32_t)id;
    }
    result = PyLong_FromSize_t(table.used);
done:
    PyMem_Free(table.slots);
    PyBuffer_Release(&src);
    PyBuffer_Release(&sport);
    PyBuffer_Release(&dst);
    PyBuffer_Release(&dport);
    PyBuffer_Release(&rows);
    PyBuffer_Release(&a_is_src);
    PyBuffer_Release(&tup);
    return result;
}

/* ------------------------------------------------------------------------------ address interning */
/* One side (source or destination) of a batch of decoded addresses, factorized: packets._AddressTable's
 * numpy path in one pass. Codes index the returned keys; the keys come in that path's order: IPv4-mapped
 * addresses (high word 0) in order of first appearance (pd.factorize), then the others sorted by
 * (high, low) (np.unique). A row that is not valid gets -1; a row not kept (keep given) gets no code.
 * factorize_addresses(addr uint64[n][4], side 0|2, keep bool[n] or b"", valid bool[n], codes out int32[kept])
 *   -> keys as bytes: (high, low) uint64 pairs */
typedef struct {
    uint64_t hi, lo;
} Address;

static int address_order(const void *a, const void *b)
{
    const Address *x = a, *y = b;
    if (x->hi != y->hi)
        return x->hi < y->hi ? -1 : 1;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static PyObject *factorize_addresses(PyObject *self, PyObject *args)
{
    Py_buffer addr, keep, valid, codes;
    int side;
    if (!PyArg_ParseTuple(args, "y*iy*y*w*", &addr, &side, &keep, &valid, &codes))
        return NULL;
    PyObject *result = NULL;
    PairTable table = {NULL, 0, 0};
    Address *keys = NULL, *sorted = NULL;
    int32_t *final = NULL;
    Py_ssize_t n = valid.len, m = codes.len / 4;
    if (addr.len != n * 32 || (keep.len != 0 && keep.len != n) || (side != 0 && side != 2) ||
        codes.len != m * 4) {
        PyErr_SetString(PyExc_ValueError, "factorize_addresses: arrays do not match");
        goto done;
    }
    const uint64_t *a = addr.buf;
    const uint8_t *kp = keep.len ? keep.buf : NULL, *ok = valid.buf;
    int32_t *out = codes.buf;
    if (pair_table_init(&table, 64) < 0)
        goto done;
    Py_ssize_t j = 0; /* output row */
    for (Py_ssize_t i = 0; i < n; i++) {
        if (kp && !kp[i])
            continue;
        if (j >= m) {
            PyErr_SetString(PyExc_ValueError, "factorize_addresses: more rows kept than codes");
            goto done;
        }
        if (!ok[i]) {
            out[j++] = -1;
            continue;
        }
        uint64_t hi = a[4 * i + side], lo = a[4 * i + side + 1];
        int64_t id = pair_table_id(&table, (int64_t)lo, (int64_t)hi);
        if (id < 0)
            goto done;
        out[j++] = (int32_t)id;
    }
    if (j != m) {
        PyErr_SetString(PyExc_ValueError, "factorize_addresses: fewer rows kept than codes");
        goto done;
    }
    /* first-seen ids -> final ids: IPv4-mapped in first-seen order, then the rest sorted */
    Py_ssize_t used = (Py_ssize_t)table.used;
    keys = PyMem_Malloc((size_t)(used ? used : 1) * sizeof(Address));
    sorted = PyMem_Malloc((size_t)(used ? used : 1) * sizeof(Address));
    final = PyMem_Malloc((size_t)(used ? used : 1) * sizeof(int32_t));
    if (!keys || !sorted || !final) {
        PyErr_NoMemory();
        goto done;
    }
    for (size_t k = 0; k < table.cap; k++) { /* the distinct addresses, by first-seen id */
        if (table.slots[k].id >= 0) {
            keys[table.slots[k].id].hi = (uint64_t)table.slots[k].hi;
            keys[table.slots[k].id].lo = (uint64_t)table.slots[k].lo;
        }
    }
    Py_ssize_t n4 = 0, n6 = 0;
    for (Py_ssize_t k = 0; k < used; k++) {
        if (keys[k].hi == 0) {
            final[k] = (int32_t)n4;
            sorted[n4++] = keys[k];
        }
    }
    Address *rest = sorted + n4;
    for (Py_ssize_t k = 0; k < used; k++) {
        if (keys[k].hi != 0)
            rest[n6++] = keys[k];
    }
    qsort(rest, (size_t)n6, sizeof(Address), address_order);
    for (Py_ssize_t k = 0; k < used; k++) {
        if (keys[k].hi == 0)
            continue;
        Address *at = bsearch(&keys[k], rest, (size_t)n6, sizeof(Address), address_order);
        final[k] = (int32_t)(n4 + (at - rest));
    }
    for (Py_ssize_t k = 0; k < m; k++) {
        if (out[k] >= 0)
            out[k] = final[out[k]];
    }
    result = PyBytes_FromStringAndSize((const char *)sorted, used * (Py_ssize_t)sizeof(Address));
done:
    PyMem_Free(table.slots);
    PyMem_Free(keys);
    PyMem_Free(sorted);
    PyMem_Free(final);
    PyBuffer_Release(&addr);
    PyBuffer_Release(&keep);
    PyBuffer_Release(&valid);
    PyBuffer_Release(&codes);
    return result;
}

/* ------------------------------------------------------------------------------------ DNS messages */
/* The rows of one DNS message (rare_layers._dns_rows), for the messages whose every byte this code
 * understands; None for all others, which _dns_rows then decodes with dpkt. The contract is one-sided: when
 * this returns rows, dpkt.dns.DNS parses the message without error and _dns_rows gives exactly those rows.
 * So every check below is dpkt's check or a stricter one (stricter only costs a fallback):
 *
 *   names      dpkt.dns.unpack_name: plain labels (length 0-63) and pointers; a pointer must point before the
 *              start of the name or of the label run it jumped to (so pointer chains strictly go backwards
 *              and end; a loop or a forward pointer is an error in dpkt); labels add up to at most 255 bytes.
 *              dpkt joins the labels with "." (no escaping of dots or odd bytes inside a label) and decodes
 *              UTF-8: here every label byte must be ASCII (< 0x80), where that decoding is the identity;
 *              a name with any other byte falls back;
 *   sections   every question and every record of all three sections must parse, as in dpkt, whose record
 *              types outside A, NS, CNAME, SOA, NULL, PTR, HINFO, MX, TXT, AAAA, SRV, OPT are an error;
 *              those types fall back, and so does any record whose rdata runs past the message, an A or
 *              AAAA whose rdata is not 4 or 16 bytes, or a name inside rdata (CNAME, NS, PTR, SOA, MX, SRV)
 *              that does not end exactly where the rdata ends, and TXT/HINFO strings that are not ASCII
 *              or overrun their rdata.
 * dns_rows(message bytes) -> list of (txid, response, rcode, qname, qtype, answer_name, answer_type, answer,
 * ttl, "ok") or None */
#define DNS_NAME_MAX 255

static PyObject *DNS_STR[5]; /* "", "ok", "A", "AAAA", "CNAME" */
static PyObject *DNS_RCODE_STR[6];
static const char *const DNS_RCODE_NAMES[6] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"};

/* The name at off, written as dpkt writes it into out[DNS_NAME_MAX + 1] (*len its length): the offset after
 * it (after its first pointer), or -1 (dpkt fails, or a byte dpkt would decode as UTF-8). Each step either
 * adds a label (at most 255 bytes of them) or follows a pointer to a smaller offset: it ends. */
static Py_ssize_t dns_name(const uint8_t *b, Py_ssize_t n, Py_ssize_t off, char *out, int *len)
{
    Py_ssize_t start = off, after = -1;
    int total = 0, w = 0;
    for (;;) {
        if (off < 0 || off >= n)
            return -1;
        unsigned c = b[off];
        if (c == 0) {
            off++;
            break;
        }
        if ((c & 0xC0) == 0xC0) {
            if (off + 1 >= n)
                return -1;
            Py_ssize_t ptr = (Py_ssize_t)(((c & 0x3F) << 8) | b[off + 1]);
            if (ptr >= start)
                return -1;
            if (after < 0)
                after = off + 2;
            start = off = ptr;
            continue;
        }
        if (c & 0xC0)
            return -1; /* label types 0x40 and 0x80 */
        if (off + 1 + (Py_ssize_t)c > n)
            return -1;
        total += (int)c + 1;
        if (total > DNS_NAME_MAX)
            return -1;
        if (w)
            out[w++] = '.';
        for (unsigned k = 0; k < c; k++) {
            uint8_t x = b[off + 1 + k];
            if (x >= 0x80)
                return -1;
            out[w++] = (char)x;
        }
        off += 1 + (Py_ssize_t)c;
    }
    *len = w;
    return after < 0 ? off : after;
}

/* The type text of _dns_rows: A, AAAA, CNAME, or the number. */
static PyObject *dns_type_text(unsigned t)
{
    PyObject *s = t == 1 ? DNS_STR[2] : t == 28 ? DNS_STR[3] : t == 5 ? DNS_STR[4] : NULL;
    if (s) {
        Py_INCREF(s);
        return s;
    }
    return PyUnicode_FromFormat("%u", t);
}

/* dns_rows on n bytes at b: a new list, None (decode with dpkt), or NULL with an exception set. */
static PyObject *dns_rows_of(const uint8_t *b, Py_ssize_t n)
{
    PyObject *result = NULL, *rows = NULL, *id = NULL, *response = NULL, *rcode = NULL, *qname = NULL,
             *qtype = NULL;
    char name[DNS_NAME_MAX + 1], target[DNS_NAME_MAX + 1];
    int name_len = 0, target_len = 0;
    if (n < 12)
        goto fallback;
    unsigned op = be16(b + 2), counts[4] = {be16(b + 4), be16(b + 6), be16(b + 8), be16(b + 10)};
    int is_response = (op & 0x8000) != 0;
    Py_ssize_t off = 12;
    for (unsigned i = 0; i < counts[0]; i++) {
        off = dns_name(b, n, off, name, &name_len);
        if (off < 0 || off + 4 > n)
            goto fallback;
        if (i == 0) {
            qname = PyUnicode_FromStringAndSize(name, name_len);
            qtype = qname ? dns_type_text(be16(b + off)) : NULL;
            if (!qtype)
                goto done;
        }
        off += 4;
    }
    if (!qname) {
        qname = Py_NewRef(DNS_STR[0]);
        qtype = Py_NewRef(DNS_STR[0]);
    }
    unsigned rc = op & 0xF;
    rcode = rc < 6 ? Py_NewRef(DNS_RCODE_STR[rc]) : PyUnicode_FromFormat("%u", rc);
    id = PyLong_FromUnsignedLong(be16(b));
    response = PyBool_FromLong(is_response);
    rows = PyList_New(0);
    if (!rcode || !id || !rows)
        goto done;
    for (int section = 1; section < 4; section++) {
        for (unsigned i = 0; i < counts[section]; i++) {
            off = dns_name(b, n, off, name, &name_len);
            if (off < 0 || off + 10 > n)
                goto fallback;
            unsigned type = be16(b + off);
            unsigned long ttl = be32(b + off + 4);
            Py_ssize_t rdlen = be16(b + off + 8), rd = off + 10, end = rd + rdlen, e;
            if (end > n)
                goto fallback;
            PyObject *kind = NULL, *value = NULL;
            char text[INET6_ADDRSTRLEN];
            switch (type) {
            case 1: /* A */
            case 28: /* AAAA */
                if (rdlen != (type == 1 ? 4 : 16))
                    goto fallback;
                if (!inet_ntop(type == 1 ? AF_INET : AF_INET6, b + rd, text, sizeof text))
                    goto fallback;
                kind = DNS_STR[type == 1 ? 2 : 3];
                value = PyUnicode_FromString(text);
                break;
            case 2: /* NS */
            case 5: /* CNAME */
            case 12: /* PTR */
                if (dns_name(b, n, rd, target, &target_len) != end)
                    goto fallback;
                if (type == 5) {
                    kind = DNS_STR[4];
                    value = PyUnicode_FromStringAndSize(target, target_len);
                }
                break;
            case 6: /* SOA: two names and five 32-bit numbers */
                e = dns_name(b, n, rd, target, &target_len);
                e = e < 0 ? -1 : dns_name(b, n, e, target, &target_len);
                if (e < 0 || e + 20 != end)
                    goto fallback;
                break;
            case 15: /* MX: preference and a name */
            case 33: /* SRV: priority, weight, port and a name */
                e = type == 15 ? 2 : 6;
                if (rdlen < e || dns_name(b, n, rd + e, target, &target_len) != end)
                    goto fallback;
                break;
            case 13: /* HINFO */
            case 16: /* TXT: character strings */
                for (e = rd; e < end; e += 1 + b[e]) {
                    if (e + 1 + b[e] > end)
                        goto fallback;
                    for (Py_ssize_t k = e + 1; k < e + 1 + b[e]; k++)
                        if (b[k] >= 0x80)
                            goto fallback;
                }
                break;
            case 10: /* NULL */
            case 41: /* OPT */
                break;
            default:
                goto fallback;
            }
            if (kind && !value)
                goto done; /* the answer's text could not be made */
            if (value && section == 1 && is_response) {
                PyObject *owner = PyUnicode_FromStringAndSize(name, name_len);
                PyObject *ttl_obj = PyLong_FromUnsignedLong(ttl);
                PyObject *row = owner && ttl_obj && value ? PyTuple_Pack(10, id, response, rcode, qname, qtype,
                                                                         owner, kind, value, ttl_obj, DNS_STR[1])
                                                          : NULL;
                Py_XDECREF(owner);
                Py_XDECREF(ttl_obj);
                Py_XDECREF(value);
                if (!row || PyList_Append(rows, row) < 0) {
                    Py_XDECREF(row);
                    goto done;
                }
                Py_DECREF(row);
            } else {
                Py_XDECREF(value);
            }
            off = end;
        }
    }
    if (PyList_GET_SIZE(rows) == 0) {
        PyObject *minus = PyLong_FromLong(-1);
        PyObject *row = minus ? PyTuple_Pack(10, id, response, rcode, qname, qtype, DNS_STR[0], DNS_STR[0],
                                             DNS_STR[0], minus, DNS_STR[1])
                              : NULL;
        Py_XDECREF(minus);
        if (!row || PyList_Append(rows, row) < 0) {
            Py_XDECREF(row);
            goto done;
        }
        Py_DECREF(row);
    }
    result = Py_NewRef(rows);
    goto done;
fallback:
    if (!PyErr_Occurred())
        result = Py_NewRef(Py_None);
done:
    Py_XDECREF(rows);
    Py_XDECREF(id);
    Py_XDECREF(response);
    Py_XDECREF(rcode);
    Py_XDECREF(qname);
    Py_XDECREF(qtype);
    return result;
}

static PyObject *dns_rows(PyObject *self, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *result = dns_rows_of(view.buf, view.len);
    PyBuffer_Release(&view);
    return result;
}

/* The rows of the distinct DNS messages, as columns (rare_layers.dns_messages): for each position p of `first`
 * (int64 as bytes), the message rare[p][1][8:] (after the UDP header) decoded by dns_rows_of, or by
 * fallback(message bytes) (rare_layers._dns_rows, dpkt) where that returns None, and its rows split into the
 * ten columns of _dns_rows' tuples. No Python call, slice or tuple per message for the common shapes.
 * dns_columns(rare, first, fallback) -> (rows per message, txid, response, ttl: int64 / uint8 as bytes;
 * rcode, qname, qtype, answer_name, answer_type, answer, status: lists) */
static PyObject *dns_columns(PyObject *self, PyObject *args)
{
    PyObject *rare, *fallback;
    Py_buffer first;
    if (!PyArg_ParseTuple(args, "O!y*O", &PyList_Type, &rare, &first, &fallback))
        return NULL;
    PyObject *result = NULL, *text[7] = {NULL};
    Vec counts = {NULL, 0, 0, sizeof(int64_t)}, txid = {NULL, 0, 0, sizeof(int64_t)},
        response = {NULL, 0, 0, 1}, ttl = {NULL, 0, 0, sizeof(int64_t)};
    const int64_t *at = first.buf;
    Py_ssize_t m = first.len / (Py_ssize_t)sizeof(int64_t), n = PyList_GET_SIZE(rare);
    for (int c = 0; c < 7; c++)
        if (!(text[c] = PyList_New(0)))
            goto done;
    for (Py_ssize_t i = 0; i < m; i++) {
        PyObject *item, *data;
        if (at[i] < 0 || at[i] >= n || !PyTuple_Check(item = PyList_GET_ITEM(rare, at[i])) ||
            PyTuple_GET_SIZE(item) != 2 || !PyBytes_Check(data = PyTuple_GET_ITEM(item, 1))) {
            PyErr_SetString(PyExc_ValueError, "dns_columns: a position outside rare, or not (row, bytes)");
            goto done;
        }
        Py_ssize_t len = PyBytes_GET_SIZE(data), skip = len < 8 ? len : 8;
        const uint8_t *b = (const uint8_t *)PyBytes_AS_STRING(data) + skip;
        PyObject *rows = dns_rows_of(b, len - skip);
        if (rows == Py_None) {
            Py_DECREF(rows);
            rows = PyObject_CallFunction(fallback, "y#", (const char *)b, len - skip);
        }
        if (!rows)
            goto done;
        if (!PyList_Check(rows)) {
            Py_DECREF(rows);
            PyErr_SetString(PyExc_TypeError, "dns_columns: the fallback must return a list");
            goto done;
        }
        int64_t count = PyList_GET_SIZE(rows);
        int bad = vec_push(&counts, &count) < 0;
        for (Py_ssize_t r = 0; !bad && r < count; r++) {
            PyObject *row = PyList_GET_ITEM(rows, r);
            if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != 10) {
                PyErr_SetString(PyExc_TypeError, "dns_columns: a row must be a tuple of 10");
                bad = 1;
                break;
            }
            int64_t id = PyLong_AsLongLong(PyTuple_GET_ITEM(row, 0)), life = PyLong_AsLongLong(PyTuple_GET_ITEM(row, 8));
            int yes = PyObject_IsTrue(PyTuple_GET_ITEM(row, 1));
            uint8_t flag = (uint8_t)(yes > 0);
            bad = PyErr_Occurred() || yes < 0 || vec_push(&txid, &id) < 0 || vec_push(&response, &flag) < 0 ||
                  vec_push(&ttl, &life) < 0;
            for (int c = 0; !bad && c < 7; c++) /* rcode qname qtype answer_name answer_type answer; status */
                bad = PyList_Append(text[c], PyTuple_GET_ITEM(row, c < 6 ? c + 2 : 9)) < 0;
        }
        Py_DECREF(rows);
        if (bad)
            goto done;
    }
    PyObject *parts[4] = {vec_bytes(&counts), vec_bytes(&txid), vec_bytes(&response), vec_bytes(&ttl)};
    if (parts[0] && parts[1] && parts[2] && parts[3])
        result = PyTuple_Pack(11, parts[0], parts[1], parts[2], parts[3], text[0], text[1], text[2], text[3],
                              text[4], text[5], text[6]);
    for (int k = 0; k < 4; k++)
        Py_XDECREF(parts[k]);
done:
    PyMem_Free(counts.data);
    PyMem_Free(txid.data);
    PyMem_Free(response.data);
    PyMem_Free(ttl.data);
    for (int c = 0; c < 7; c++)
        Py_XDECREF(text[c]);
    PyBuffer_Release(&first);
    return result;
}

/* The UDP DNS messages among the rare payloads, and which are the same message (rare_layers.dns_messages).
 * rare: the list of (row, L4 bytes) the decoder kept; udp: one byte per item, 1 for a UDP message (its DNS
 * message starts after the 8-byte UDP header). Per UDP message, in order: its row, its transaction id (-1 when
 * under 2 bytes) and its kind, numbered by first sight over the bytes after the transaction id (what
 * pandas.factorize gives on those bytes); per kind, the position in `rare` of its first message. The keys are
 * hashed with Python's own randomized bytes hash (SipHash), so a capture cannot choose colliding messages.
 * dns_index(rare, udp) -> (rows, txids, kinds, first positions), each int64 as bytes */
#define DNS_AHEAD 8
typedef struct {
    Py_hash_t hash;
    int64_t kind; /* -1: empty; else the kind whose first message sits here */
} DnsSlot;

/* The message bytes after the transaction id (empty when there are none): what kinds are told apart by. */
static inline const uint8_t *dns_key(PyObject *data, Py_ssize_t *key_len)
{
    Py_ssize_t len = PyBytes_GET_SIZE(data);
    *key_len = len > 10 ? len - 10 : 0;
    return (const uint8_t *)PyBytes_AS_STRING(data) + (len > 10 ? 10 : 0);
}

static PyObject *dns_index(PyObject *self, PyObject *args)
{
    PyObject *rare;
    Py_buffer udp;
    if (!PyArg_ParseTuple(args, "O!y*", &PyList_Type, &rare, &udp))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = PyList_GET_SIZE(rare), m = 0, kinds = 0, cap = 64;
    int64_t *rows = NULL, *txid = NULL, *kind = NULL, *first = NULL, *at_item = NULL;
    Py_hash_t *hashes = NULL;
    DnsSlot *slots = NULL;
    const uint8_t *is_udp = udp.buf;
    if (udp.len != n) {
        PyErr_SetString(PyExc_ValueError, "dns_index: one udp flag per item");
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        m += is_udp[i] != 0;
    while (cap < 2 * m)
        cap <<= 1;
    rows = PyMem_Malloc(sizeof(int64_t) * (m ? m : 1));
    txid = PyMem_Malloc(sizeof(int64_t) * (m ? m : 1));
    kind = PyMem_Malloc(sizeof(int64_t) * (m ? m : 1));
    first = PyMem_Malloc(sizeof(int64_t) * (m ? m : 1));
    at_item = PyMem_Malloc(sizeof(int64_t) * (m ? m : 1));
    hashes = PyMem_Malloc(sizeof(Py_hash_t) * (m ? m : 1));
    slots = PyMem_Malloc(sizeof(DnsSlot) * cap);
    if (!rows || !txid || !kind || !first || !at_item || !hashes || !slots) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < cap; k++)
        slots[k].kind = -1;
    /* Pass 1, in order: each UDP message's row, transaction id and key hash. The items are objects all over
     * the heap: an item's tuple, then (once that is in cache) its bytes, are asked for some rows ahead. */
    Py_ssize_t j = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i + 2 * DNS_AHEAD < n)
            PREFETCH(PyList_GET_ITEM(rare, i + 2 * DNS_AHEAD));
        if (i + DNS_AHEAD < n) {
            PyObject *ahead = PyList_GET_ITEM(rare, i + DNS_AHEAD);
            if (PyTuple_Check(ahead) && PyTuple_GET_SIZE(ahead) == 2) {
                PREFETCH(PyTuple_GET_ITEM(ahead, 1));
                PREFETCH((const void *)((uintptr_t)PyTuple_GET_ITEM(ahead, 1) + 64)); /* may lie past a short one */
            }
        }
        if (!is_udp[i])
            continue;
        PyObject *item = PyList_GET_ITEM(rare, i), *row, *data;
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 || !PyLong_Check(row = PyTuple_GET_ITEM(item, 0)) ||
            !PyBytes_Check(data = PyTuple_GET_ITEM(item, 1))) {
            PyErr_SetString(PyExc_TypeError, "dns_index: items must be (int row, bytes)");
            goto done;
        }
        rows[j] = PyLong_AsLongLong(row);
        if (rows[j] == -1 && PyErr_Occurred())
            goto done;
        /* message = data[8:]; txid = message[:2]; key = message[2:] (empty when shorter) */
        txid[j] = PyBytes_GET_SIZE(data) >= 10 ? (int64_t)be16((const uint8_t *)PyBytes_AS_STRING(data) + 8) : -1;
        Py_ssize_t key_len;
        const uint8_t *key = dns_key(data, &key_len);
        hashes[j] = _Py_HashBytes(key, key_len);
        at_item[j] = i;
        j++;
    }
    /* Pass 2: number the kinds by first sight. Each message's first probe is a cache miss in a table of
     * megabytes: the slots of the messages some places ahead are asked for before their turn. */
    for (j = 0; j < m; j++) {
        if (j + DNS_AHEAD < m)
            PREFETCH(&slots[(size_t)hashes[j + DNS_AHEAD] & (size_t)(cap - 1)]);
        Py_hash_t h = hashes[j];
        PyObject *data = PyTuple_GET_ITEM(PyList_GET_ITEM(rare, at_item[j]), 1);
        Py_ssize_t key_len;
        const uint8_t *key = dns_key(data, &key_len);
        size_t at = (size_t)h & (size_t)(cap - 1);
        for (;;) {
            int64_t k = slots[at].kind;
            if (k < 0) {
                slots[at].kind = kinds;
                slots[at].hash = h;
                first[kinds] = at_item[j];
                kind[j] = kinds++;
                break;
            }
            if (slots[at].hash == h) {
                Py_ssize_t other_len;
                const uint8_t *other = dns_key(PyTuple_GET_ITEM(PyList_GET_ITEM(rare, first[k]), 1), &other_len);
                if (other_len == key_len && memcmp(other, key, key_len) == 0) {
                    kind[j] = k;
                    break;
                }
            }
            at = (at + 1) & (size_t)(cap - 1);
        }
    }
    result = Py_BuildValue("(y#y#y#y#)", (const char *)rows, (Py_ssize_t)(m * 8), (const char *)txid,
                           (Py_ssize_t)(m * 8), (const char *)kind, (Py_ssize_t)(m * 8), (const char *)first,
                           (Py_ssize_t)(kinds * 8));
done:
    PyMem_Free(rows);
    PyMem_Free(txid);
    PyMem_Free(kind);
    PyMem_Free(first);
    PyMem_Free(at_item);
    PyMem_Free(hashes);
    PyMem_Free(slots);
    PyBuffer_Release(&udp);
    return result;
}

/* ------------------------------------------------------------------------------ delivery (diagnose) */
/* The three searches of diagnose/delivery.py's segment fates, per data segment of one direction. The
 * caller sorts (numpy's lexsort, the same order the numpy path builds), so each connection's rows are one
 * run here; a run is found by the connection id, dense from 0. */

/* The start of each connection's run in a column sorted by connection: starts[c]..starts[c + 1]. */
static Py_ssize_t *conn_runs(const int64_t *conn, Py_ssize_t n, int64_t *n_conn)
{
    int64_t top = n ? conn[n - 1] + 1 : 0;
    if (n && conn[0] < 0) {
        PyErr_SetString(PyExc_ValueError, "delivery: a negative connection id");
        return NULL;
    }
    Py_ssize_t *starts = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(top + 1));
    if (!starts) {
        PyErr_NoMemory();
        return NULL;
    }
    Py_ssize_t k = 0;
    for (int64_t c = 0; c <= top; c++) {
        while (k < n && conn[k] < c)
            k++;
        starts[c] = k;
    }
    *n_conn = top;
    return starts;
}

static int sorted_by_conn(const int64_t *conn, Py_ssize_t n)
{
    for (Py_ssize_t k = 1; k < n; k++)
        if (conn[k] < conn[k - 1])
            return 0;
    return 1;
}

/* first_cumulative_ack(c, end, a_conn, a_ack, a_ts, out): the receiver's ACKs sorted by (connection, time);
 * out[i] = the time of the first ACK of connection c[i] whose running highest acknowledgment reaches end[i]
 * (out is left as it is where none does). delivery._first_cumulative_ack. */
static PyObject *first_cumulative_ack(PyObject *self, PyObject *args)
{
    Py_buffer c, end, a_conn, a_ack, a_ts, out;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*w*", &c, &end, &a_conn, &a_ack, &a_ts, &out))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t *starts = NULL;
    int64_t *reach = NULL;
    Py_ssize_t n = c.len / 8, m = a_conn.len / 8;
    if (end.len != c.len || out.len != c.len || a_ack.len != a_conn.len || a_ts.len != a_conn.len) {
        PyErr_SetString(PyExc_ValueError, "first_cumulative_ack: arrays do not match");
        goto done;
    }
    const int64_t *cv = c.buf, *ev = end.buf, *ac = a_conn.buf, *aa = a_ack.buf, *at = a_ts.buf;
    int64_t *ov = out.buf, n_conn = 0;
    if (!sorted_by_conn(ac, m)) {
        PyErr_SetString(PyExc_ValueError, "first_cumulative_ack: ACKs not sorted by connection");
        goto done;
    }
    if (!(starts = conn_runs(ac, m, &n_conn)))
        goto done;
    if (!(reach = PyMem_Malloc(sizeof(int64_t) * (size_t)(m ? m : 1)))) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < m; k++) /* running highest acknowledgment, per connection */
        reach[k] = (k && ac[k] == ac[k - 1] && reach[k - 1] > aa[k]) ? reach[k - 1] : aa[k];
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t conn = cv[i];
        if (conn < 0 || conn >= n_conn)
            continue;
        Py_ssize_t lo = starts[conn], hi = starts[conn + 1];
        if (lo == hi || reach[hi - 1] < ev[i])
            continue;
        while (lo < hi) { /* the first position whose reach is >= end (reach does not decrease in a run) */
            Py_ssize_t mid = lo + (hi - lo) / 2;
            if (reach[mid] >= ev[i])
                hi = mid;
            else
                lo = mid + 1;
        }
        ov[i] = at[lo];
    }
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(starts);
    PyMem_Free(reach);
    PyBuffer_Release(&c);
    PyBuffer_Release(&end);
    PyBuffer_Release(&a_conn);
    PyBuffer_Release(&a_ack);
    PyBuffer_Release(&a_ts);
    PyBuffer_Release(&out);
    return result;
}

/* sack_covered(c, start, end, b_conn, b_left, b_right, out uint8): SACK blocks sorted by (connection, left
 * edge); out[i] = whether blocks of connection c[i] starting at or before start[i] reach end[i]
 * (the furthest right edge among them). delivery._sack_covered. */
static PyObject *sack_covered(PyObject *self, PyObject *args)
{
    Py_buffer c, start, end, b_conn, b_left, b_right, out;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*w*", &c, &start, &end, &b_conn, &b_left, &b_right, &out))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t *starts = NULL;
    int64_t *reach = NULL;
    Py_ssize_t n = c.len / 8, m = b_conn.len / 8;
    if (start.len != c.len || end.len != c.len || out.len != n || b_left.len != b_conn.len ||
        b_right.len != b_conn.len) {
        PyErr_SetString(PyExc_ValueError, "sack_covered: arrays do not match");
        goto done;
    }
    const int64_t *cv = c.buf, *sv = start.buf, *ev = end.buf, *bc = b_conn.buf, *bl = b_left.buf,
                  *br = b_right.buf;
    uint8_t *ov = out.buf;
    int64_t n_conn = 0;
    if (!sorted_by_conn(bc, m)) {
        PyErr_SetString(PyExc_ValueError, "sack_covered: blocks not sorted by connection");
        goto done;
    }
    if (!(starts = conn_runs(bc, m, &n_conn)))
        goto done;
    if (!(reach = PyMem_Malloc(sizeof(int64_t) * (size_t)(m ? m : 1)))) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < m; k++)
        reach[k] = (k && bc[k] == bc[k - 1] && reach[k - 1] > br[k]) ? reach[k - 1] : br[k];
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t conn = cv[i];
        ov[i] = 0;
        if (conn < 0 || conn >= n_conn)
            continue;
        Py_ssize_t lo = starts[conn], hi = starts[conn + 1];
        while (lo < hi) { /* the first block whose left edge is past start */
            Py_ssize_t mid = lo + (hi - lo) / 2;
            if (bl[mid] > sv[i])
                hi = mid;
            else
                lo = mid + 1;
        }
        ov[i] = lo > starts[conn] && reach[lo - 1] >= ev[i];
    }
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(starts);
    PyMem_Free(reach);
    PyBuffer_Release(&c);
    PyBuffer_Release(&start);
    PyBuffer_Release(&end);
    PyBuffer_Release(&b_conn);
    PyBuffer_Release(&b_left);
    PyBuffer_Release(&b_right);
    PyBuffer_Release(&out);
    return result;
}

/* first_later_copy(c, start, end, t, order, out): segments of one direction, `order` sorting them by
 * (connection, start); out[i] = the earliest t[j] of a segment j != i of the same connection, sent later
 * (t[j] > t[i]), that overlaps [start[i], end[i]) (out is left as it is where none does). A segment that
 * overlaps j starts within [start[j] - longest, end[j]), longest the connection's longest segment: the same
 * candidates the numpy path pairs up. delivery._first_later_copy.
 * The segments are first laid out in `order` (one gather), so the sweep reads memory in sequence; and since
 * a run's starts ascend, where j's candidates begin only moves forward (no search per segment). */
static PyObject *first_later_copy(PyObject *self, PyObject *args)
{
    Py_buffer c, start, end, t, order, out;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*w*", &c, &start, &end, &t, &order, &out))
        return NULL;
    PyObject *result = NULL;
    int64_t *lay = NULL;
    uint8_t *seen = NULL;
    Py_ssize_t n = c.len / 8;
    if (start.len != c.len || end.len != c.len || t.len != c.len || order.len != c.len || out.len != c.len) {
        PyErr_SetString(PyExc_ValueError, "first_later_copy: arrays do not match");
        goto done;
    }
    const int64_t *cv = c.buf, *sv = start.buf, *ev = end.buf, *tv = t.buf, *ord = order.buf;
    int64_t *ov = out.buf;
    if (!(seen = PyMem_Calloc((size_t)(n ? n : 1), 1)) ||
        !(lay = PyMem_Malloc(sizeof(int64_t) * 5 * (size_t)(n ? n : 1)))) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        if (ord[k] < 0 || ord[k] >= n) {
            PyErr_SetString(PyExc_ValueError, "first_later_copy: an order position is out of range");
            goto done;
        }
        if (seen[ord[k]]++) {
            PyErr_SetString(PyExc_ValueError, "first_later_copy: the order repeats a position");
            goto done;
        }
    }
    /* in order: connection, start, end, time, and the answer so far */
    int64_t *C = lay, *S = lay + n, *E = lay + 2 * n, *T = lay + 3 * n, *R = lay + 4 * n;
    for (Py_ssize_t k = 0; k < n; k++) {
        int64_t i = ord[k];
        C[k] = cv[i], S[k] = sv[i], E[k] = ev[i], T[k] = tv[i], R[k] = ov[i];
        if (k && C[k] == C[k - 1] && S[k] < S[k - 1]) {
            PyErr_SetString(PyExc_ValueError, "first_later_copy: the order does not sort by connection and start");
            goto done;
        }
    }
    Py_ssize_t run = 0;
    while (run < n) {
        Py_ssize_t stop = run;
        int64_t longest = 0;
        while (stop < n && C[stop] == C[run]) {
            if (E[stop] - S[stop] > longest)
                longest = E[stop] - S[stop];
            stop++;
        }
        Py_ssize_t lo = run; /* the first segment of the run starting at or after start[j] - longest */
        for (Py_ssize_t k = run; k < stop; k++) {
            int64_t from = S[k] - longest;
            while (lo < stop && S[lo] < from)
                lo++;
            for (Py_ssize_t p = lo; p < stop && S[p] < E[k]; p++)
                if (p != k && T[p] < T[k] && E[p] > S[k] && S[p] < E[k] && T[k] < R[p])
                    R[p] = T[k];
        }
        run = stop;
    }
    for (Py_ssize_t k = 0; k < n; k++)
        ov[ord[k]] = R[k];
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(lay);
    PyMem_Free(seen);
    PyBuffer_Release(&c);
    PyBuffer_Release(&start);
    PyBuffer_Release(&end);
    PyBuffer_Release(&t);
    PyBuffer_Release(&order);
    PyBuffer_Release(&out);
    return result;
}

/* factorize_u64(keys uint64, codes int64 out, seed) -> the number of distinct keys: codes[i] numbers keys[i] in
 * order of first appearance, as pandas.factorize's codes (rowkeys.factorize: the segment keys' hashes of two
 * big captures, ~10^6 each). Open addressing, at most half full (grown as needed); each key is mixed with the
 * caller's seed first (splitmix64's finalizer), so keys a capture chose to share their low bits do not share
 * slots. */
typedef struct {
    uint64_t key;
    int64_t code; /* -1: empty */
} U64Slot;

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static int u64_table_grow(U64Slot **slots, size_t *cap, uint64_t seed)
{
    size_t bigger = *cap * 2, mask = bigger - 1;
    U64Slot *fresh = PyMem_RawMalloc(sizeof(U64Slot) * bigger);
    if (!fresh)
        return -1;
    for (size_t s = 0; s < bigger; s++)
        fresh[s].code = -1;
    for (size_t s = 0; s < *cap; s++) {
        if ((*slots)[s].code < 0)
            continue;
        size_t t = mix64((*slots)[s].key ^ seed) & mask;
        while (fresh[t].code >= 0)
            t = (t + 1) & mask;
        fresh[t] = (*slots)[s];
    }
    PyMem_RawFree(*slots);
    *slots = fresh;
    *cap = bigger;
    return 0;
}

static PyObject *factorize_u64(PyObject *self, PyObject *args)
{
    Py_buffer keys, codes;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "y*w*K", &keys, &codes, &seed))
        return NULL;
    PyObject *result = NULL;
    U64Slot *slots = NULL;
    Py_ssize_t n = keys.len / 8;
    if (keys.len != n * 8 || codes.len != keys.len) {
        PyErr_SetString(PyExc_ValueError, "factorize_u64: arrays do not match");
        goto done;
    }
    /* room for up to half the keys distinct (two captures of the same segments), doubled when half full: a
     * table of megabytes costs its page faults and cache misses, not only its probes */
    size_t cap = 1024;
    while (cap < (size_t)n)
        cap <<= 1;
    if (!(slots = PyMem_RawMalloc(sizeof(U64Slot) * cap))) {
        PyErr_NoMemory();
        goto done;
    }
    const uint64_t *kv = keys.buf;
    int64_t *cv = codes.buf, next = 0;
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    for (size_t s = 0; s < cap; s++)
        slots[s].code = -1;
    size_t mask = cap - 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i + 8 < n)
            PREFETCH(&slots[mix64(kv[i + 8] ^ seed) & mask]);
        uint64_t k = kv[i];
        size_t s = mix64(k ^ seed) & mask;
        while (slots[s].code >= 0 && slots[s].key != k)
            s = (s + 1) & mask;
        if (slots[s].code < 0) {
            if ((size_t)(next + 1) * 2 > cap) { /* keep it at most half full */
                if (u64_table_grow(&slots, &cap, seed) < 0) {
                    failed = 1;
                    break;
                }
                mask = cap - 1;
                s = mix64(k ^ seed) & mask;
                while (slots[s].code >= 0)
                    s = (s + 1) & mask;
            }
            slots[s].key = k;
            slots[s].code = next++;
        }
        cv[i] = slots[s].code;
    }
    Py_END_ALLOW_THREADS
    if (failed)
        PyErr_NoMemory();
    else
        result = PyLong_FromLongLong(next);
done:
    PyMem_RawFree(slots);
    PyBuffer_Release(&keys);
    PyBuffer_Release(&codes);
    return result;
}

/* Stable merge sort of positions pos[0..n) by key[pos]: equal keys keep their order. */
static void merge_by_key(int64_t *pos, int64_t *tmp, Py_ssize_t n, const int64_t *key)
{
    for (Py_ssize_t width = 1; width < n; width *= 2) {
        for (Py_ssize_t lo = 0; lo < n; lo += 2 * width) {
            Py_ssize_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            Py_ssize_t a = lo, b = mid, k = lo;
            while (a < mid && b < hi)
                tmp[k++] = key[pos[b]] < key[pos[a]] ? pos[b++] : pos[a++];
            while (a < mid)
                tmp[k++] = pos[a++];
            while (b < hi)
                tmp[k++] = pos[b++];
        }
        memcpy(pos, tmp, sizeof(int64_t) * (size_t)n);
    }
}

/* conn_order(conn, key, out): the positions in the order np.lexsort((key, conn)) gives (by connection, then
 * by key, ties in position order), for connection ids 0 <= conn < 4 * n + 1024: counted into place by
 * connection, each connection's run then left as it is when its keys already ascend (a connection's
 * segments mostly come in order) or merge-sorted. rowkeys.conn_order. */
static PyObject *conn_order(PyObject *self, PyObject *args)
{
    Py_buffer conn, key, out;
    if (!PyArg_ParseTuple(args, "y*y*w*", &conn, &key, &out))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t *starts = NULL;
    int64_t *tmp = NULL;
    Py_ssize_t n = conn.len / 8;
    if (key.len != conn.len || out.len != conn.len) {
        PyErr_SetString(PyExc_ValueError, "conn_order: arrays do not match");
        goto done;
    }
    const int64_t *cv = conn.buf, *kv = key.buf;
    int64_t *ov = out.buf, top = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (cv[i] < 0 || cv[i] >= 4 * (int64_t)n + 1024) {
            PyErr_SetString(PyExc_ValueError, "conn_order: a connection id is out of range");
            goto done;
        }
        if (cv[i] + 1 > top)
            top = cv[i] + 1;
    }
    if (!(starts = PyMem_Calloc((size_t)top + 1, sizeof(Py_ssize_t))) ||
        !(tmp = PyMem_Malloc(sizeof(int64_t) * (size_t)(n ? n : 1)))) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        starts[cv[i] + 1]++;
    for (int64_t c = 0; c < top; c++)
        starts[c + 1] += starts[c];
    for (Py_ssize_t i = 0; i < n; i++) /* stable: positions ascend within each connection */
        ov[starts[cv[i]]++] = i;
    Py_ssize_t lo = 0;
    for (int64_t c = 0; c < top; c++) { /* starts[c] is now where connection c's run ends */
        Py_ssize_t hi = starts[c], k = lo + 1;
        while (k < hi && kv[ov[k]] >= kv[ov[k - 1]])
            k++;
        if (k < hi)
            merge_by_key(ov + lo, tmp, hi - lo, kv);
        lo = hi;
    }
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(starts);
    PyMem_Free(tmp);
    PyBuffer_Release(&conn);
    PyBuffer_Release(&key);
    PyBuffer_Release(&out);
    return result;
}

/* turn_state(c, keep, ts, dirn, plen, end, acked, is_ack, cut, ordered, sent, got, last_dir, next_dir,
 * next_len): turns._turn_at's passes over the packets at one cut time per connection (`cut`, seconds; a row
 * is before the cut when it is kept and ts <= cut[c] + 1e-9, after it when ts > cut[c] + 1e-9). Per
 * direction d and connection k: sent[d * n + k], the highest sequence end of data sent before the cut, and
 * got[d * n + k], the highest acknowledgment of it (both left as they are where nothing counts: the caller
 * fills them with INT64_MIN). Among `ordered` (the data segments, in connection and time order): the direction
 * of each connection's last segment before the cut, and the direction and length of its first after it
 * (left as they are where there is none). */
static PyObject *turn_state(PyObject *self, PyObject *args)
{
    Py_buffer c, keep, ts, dirn, plen, end, acked, is_ack, cut, ordered, sent, got, last_dir, next_dir, next_len;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*y*y*y*w*w*w*w*w*", &c, &keep, &ts, &dirn, &plen, &end, &acked,
                          &is_ack, &cut, &ordered, &sent, &got, &last_dir, &next_dir, &next_len))
        return NULL;
    PyObject *result = NULL;
    uint8_t *after_seen = NULL;
    Py_ssize_t rows = c.len / 8, n = cut.len / 8, m = ordered.len / 8;
    if (keep.len != rows || is_ack.len != rows || ts.len != c.len || dirn.len != c.len || plen.len != c.len ||
        end.len != c.len || acked.len != c.len || sent.len != 2 * cut.len || got.len != 2 * cut.len ||
        last_dir.len != cut.len || next_dir.len != cut.len || next_len.len != cut.len) {
        PyErr_SetString(PyExc_ValueError, "turn_state: arrays do not match");
        goto done;
    }
    const int64_t *cv = c.buf, *dv = dirn.buf, *pv = plen.buf, *ev = end.buf, *av = acked.buf, *ov = ordered.buf;
    const uint8_t *kv = keep.buf, *isack = is_ack.buf;
    const double *tv = ts.buf, *cutv = cut.buf;
    int64_t *sentv = sent.buf, *gotv = got.buf, *lastv = last_dir.buf, *nextv = next_dir.buf, *lenv = next_len.buf;
    for (Py_ssize_t r = 0; r < rows; r++) {
        if (!kv[r])
            continue;
        int64_t k = cv[r], d = dv[r];
        if (k < 0 || k >= n) {
            PyErr_SetString(PyExc_ValueError, "turn_state: a kept row's connection is out of range");
            goto done;
        }
        if (!(tv[r] <= cutv[k] + 1e-9) || (d != 0 && d != 1))
            continue;
        if (pv[r] > 0 && ev[r] > sentv[d * n + k]) /* data sent in direction d */
            sentv[d * n + k] = ev[r];
        if (isack[r] && av[r] > gotv[(1 - d) * n + k]) /* acknowledges data sent the other way */
            gotv[(1 - d) * n + k] = av[r];
    }
    if (!(after_seen = PyMem_Calloc((size_t)(n ? n : 1), 1))) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < m; i++) {
        int64_t r = ov[i];
        if (r < 0 || r >= rows || cv[r] < 0 || cv[r] >= n) {
            PyErr_SetString(PyExc_ValueError, "turn_state: an ordered row is out of range");
            goto done;
        }
        int64_t k = cv[r];
        double limit = cutv[k] + 1e-9;
        if (kv[r] && tv[r] <= limit)
            lastv[k] = dv[r]; /* the last one wins: ordered is in time order within a connection */
        else if (tv[r] > limit && !after_seen[k]) {
            after_seen[k] = 1;
            nextv[k] = dv[r];
            lenv[k] = pv[r];
        }
    }
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(after_seen);
    PyBuffer_Release(&c);
    PyBuffer_Release(&keep);
    PyBuffer_Release(&ts);
    PyBuffer_Release(&dirn);
    PyBuffer_Release(&plen);
    PyBuffer_Release(&end);
    PyBuffer_Release(&acked);
    PyBuffer_Release(&is_ack);
    PyBuffer_Release(&cut);
    PyBuffer_Release(&ordered);
    PyBuffer_Release(&sent);
    PyBuffer_Release(&got);
    PyBuffer_Release(&last_dir);
    PyBuffer_Release(&next_dir);
    PyBuffer_Release(&next_len);
    return result;
}

static PyMethodDef methods[] = {
    {"walk_pcap", walk_pcap, METH_VARARGS,
     "walk_pcap(buf, rec_hdr, at, big_endian, max_record) -> (int64 record starts as bytes, stop position, "
     "int64 header fields as bytes)"},
    {"epb_run", epb_run, METH_VARARGS,
     "epb_run(buf, pos, max_record) -> (int64 starts of consecutive enhanced packet blocks, stop position, "
     "int64 first seven words of each)"},
    {"decode", decode, METH_VARARGS,
     "decode(buf, data_off, caplen, linktype, columns, addr) -> (fallback rows, sack rows, sack left, "
     "sack right, rare rows, rare bytes)"},
    {"tcp_segments", tcp_segments, METH_VARARGS,
     "tcp_segments(first, a_is_src, key_lo, key_hi, flags, seq, ack, plen, ts, win, ooo_ns, fast_ns, "
     "per-packet outputs, per-connection outputs): tcp.segments._analyze_numpy, one connection at a time"},
    {"tcp_aggregates", tcp_aggregates, METH_VARARGS,
     "tcp_aggregates(first, dirn, flags, rel, rel_ack, plen, ts, frame, ip_len, outer, ipv, hole, flag bits, "
     "table): tcp.flows._aggregates_numpy, one connection at a time"},
    {"tuple_ids", tuple_ids, METH_VARARGS,
     "tuple_ids(src codes, sports, dst codes, dports, rows, a_is_src out, ids out) -> distinct tuples: "
     "tcp.connections.tuple_ids in one pass"},
    {"factorize_addresses", factorize_addresses, METH_VARARGS,
     "factorize_addresses(addr, side, keep, valid, codes out) -> keys: one address side of a batch, "
     "factorized in packets._AddressTable's order"},
    {"dns_rows", dns_rows, METH_O,
     "dns_rows(message) -> the rows of rare_layers._dns_rows, or None: a message to decode with dpkt"},
    {"dns_columns", dns_columns, METH_VARARGS,
     "dns_columns(rare, first positions, fallback) -> (rows per message, txid, response, ttl, rcode, qname, "
     "qtype, answer_name, answer_type, answer, status): the DNS table's rows of the distinct messages, as columns"},
    {"dns_index", dns_index, METH_VARARGS,
     "dns_index(rare, udp flags) -> (rows, txids, kinds, first positions): the UDP DNS messages of "
     "rare_layers.dns_messages, numbered by distinct message"},
    {"first_cumulative_ack", first_cumulative_ack, METH_VARARGS,
     "first_cumulative_ack(c, end, ack conn, ack, ack ts, out): delivery._first_cumulative_ack's search"},
    {"sack_covered", sack_covered, METH_VARARGS,
     "sack_covered(c, start, end, block conn, left, right, out): delivery._sack_covered's search"},
    {"first_later_copy", first_later_copy, METH_VARARGS,
     "first_later_copy(c, start, end, t, order, out): delivery._first_later_copy's search"},
    {"conn_order", conn_order, METH_VARARGS,
     "conn_order(conn, key, out): np.lexsort((key, conn)) for connection ids, by counting"},
    {"factorize_u64", factorize_u64, METH_VARARGS,
     "factorize_u64(keys, codes out, seed) -> distinct keys: pandas.factorize's codes of 64-bit keys"},
    {"turn_state", turn_state, METH_VARARGS,
     "turn_state(c, keep, ts, dir, payload, end, acked, is_ack, cut, ordered, sent, got, last dir, next dir, "
     "next len): turns._turn_at's passes at one cut per connection"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "pcapmtu.ingest._native",
                                    "The per-record hot loops of pcapmtu in C (optional).", -1, methods};

PyMODINIT_FUNC PyInit__native(void)
{
    static const char *const texts[5] = {"", "ok", "A", "AAAA", "CNAME"};
    for (int k = 0; k < 5; k++)
        if (!DNS_STR[k] && !(DNS_STR[k] = PyUnicode_InternFromString(texts[k])))
            return NULL;
    for (int k = 0; k < 6; k++)
        if (!DNS_RCODE_STR[k] && !(DNS_RCODE_STR[k] = PyUnicode_InternFromString(DNS_RCODE_NAMES[k])))
            return NULL;
    PyObject *m = PyModule_Create(&module);
    PyObject *layout = m ? PyTuple_New(N_COLUMNS) : NULL;
    if (!layout)
        goto fail;
    for (int k = 0; k < N_COLUMNS; k++) {
        PyObject *item = Py_BuildValue("(ssnN)", LAYOUT[k].name, LAYOUT[k].dtype, LAYOUT[k].itemsize,
                                       PyBool_FromLong(LAYOUT[k].is_signed));
        if (!item)
            goto fail;
        PyTuple_SET_ITEM(layout, k, item);
    }
    if (PyModule_AddObjectRef(m, "COLUMN_LAYOUT", layout) < 0)
        goto fail;
    Py_DECREF(layout);
    return m;
fail:
    Py_XDECREF(layout);
    Py_XDECREF(m);
    return NULL;
}
