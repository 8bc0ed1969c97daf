/*
 * handler.h -- what a protocol gives the data port's server: the server
 * moves bytes, a handler turns them into replies (Pelikan's
 * worker/processor split).
 *
 * WHAT IT DOES
 *   The server (net/server.h) owns the listening socket, the worker
 *   threads and their event loops, the read buffers and the sendmsg() of
 *   replies; it knows no protocol.  It asks a handler, through the table
 *   of functions below, for everything a protocol decides.  proto/
 *   implements it for the memcached text protocol (proto/proto_text.h,
 *   bc_proto_text_handler); main.c hands that to the server.
 *
 * HOW
 *
 *   server                                 handler
 *   ------                                 -------
 *   bc_server_start, per worker -------->  worker_create(ctx, el, stats)
 *   top of each loop iteration --------->  worker_before_poll(worker)
 *   accepted socket, conn_size bytes --->  conn_init(ctx, worker, conn, ...)
 *     of handler state next to its own     conn_out(conn): the queue the
 *                                          server sends (net/outq.h)
 *   bytes read ------------------------->  process(conn, buf, len) ->
 *                                            consumed, status
 *   a data block in progress? ---------->  direct_dest / direct_done: the
 *                                            socket is read straight into it
 *   after each event ------------------->  state_name(conn): "stats conns"
 *   waiting(conn)? --------------------->  true: the handler holds input back
 *                                            (too many forwarded commands in
 *                                            flight); the server stops reading
 *                                            until resume(arg)
 *   holes in conn_out's queue ---------->  replies to come: the server sends
 *                                            up to the first one, and again
 *                                            when the handler calls resume(arg)
 *   streaming(conn)? ------------------->  true: a long reply is produced a
 *     and the queue has drained below       chunk at a time; stream(conn)
 *     BC_HANDLER_STREAM_LOW_WATER           queues the next one
 *   BC_EHANDOFF ------------------------>  handoff_args(conn): the socket
 *                                            goes to the server's handoff fn
 *   close ------------------------------>  conn_release(conn)
 *   bc_server_stop, per worker --------->  worker_destroy(worker)
 *
 *   process() returns BC_OK; BC_ECLOSED (close once the queue is sent);
 *   BC_ENOMEM (close now); BC_EHANDOFF (the line just consumed asks for the
 *   socket to be handed over).  It consumes nothing more while its output
 *   queue holds out_limit bytes (backpressure: the server then stops
 *   reading until the queue drains).
 *
 * THREADS
 *   worker_create and worker_destroy run on the thread that starts and
 *   stops the server, before the worker thread exists and after it ended;
 *   every other call runs on the worker thread that owns the connection.
 */
#ifndef BC_HANDLER_H
#define BC_HANDLER_H

#include <stdbool.h>
#include <stddef.h>

#include "bc_status.h"
#include "net/el.h"
#include "net/outq.h"
#include "net/stats.h"

/* A streaming handler's next chunk is asked for (stream) once fewer
 * bytes than this wait in the output queue. */
#define BC_HANDLER_STREAM_LOW_WATER (64u * 1024u)

/* The longest arguments of a handoff line (handoff_args), NUL excluded. */
#define BC_HANDLER_HANDOFF_ARGS_MAX 255

typedef struct bc_handler {
    /* Bytes of per-connection state the server keeps for the handler
     * (max_align_t aligned, zeroed before conn_init). */
    size_t conn_size;
    /* The longest incomplete input the handler may need whole in one
     * buffer (its longest line): the server grows a connection's read
     * buffer that far, no further. */
    size_t max_line;

    /* Per-worker state (*out, may stay NULL), on the worker's loop el;
     * stats are the worker's counters (net/stats.h), written only by the
     * worker thread.  Errors stop bc_server_start. */
    bc_status_t (*worker_create)(void *ctx, bc_el_t *el, bc_thread_stats_t *stats, void **out);
    /* The top of each loop iteration (el.h before_poll). */
    void (*worker_before_poll)(void *worker);
    /* After every connection of the worker is released. */
    void (*worker_destroy)(void *worker);

    /* A new connection: conn is conn_size zeroed bytes; id names it in
     * logs.  resume(arg) is for the handler to call, from the worker loop
     * (never from inside process), when input it held back (waiting) may
     * go on or when it filled a hole of the output queue (net/outq.h). */
    void (*conn_init)(void *ctx, void *worker, void *conn, bc_thread_stats_t *stats, int id,
                      void (*resume)(void *arg), void *arg);
    /* Releases everything the connection holds; conn is then garbage. */
    void (*conn_release)(void *conn);
    /* The connection's output queue, valid from conn_init to conn_release. */
    bc_outq_t *(*conn_out)(void *conn);

    /* Consumes input from buf[0..len): see HOW.  *consumed receives how
     * many bytes were used; the rest is presented again next time. */
    bc_status_t (*process)(void *conn, const char *buf, size_t len, size_t out_limit,
                           size_t *consumed);
    /* While a data block is expected: where its next bytes go and how many
     * are still expected (false otherwise).  After writing k > 0 bytes
     * there, direct_done(conn, k); it returns as process. */
    bool (*direct_dest)(const void *conn, char **dst, size_t *n);
    bc_status_t (*direct_done)(void *conn, size_t n);
    /* True while the handler holds input back until it calls resume. */
    bool (*waiting)(const void *conn);
    /* A reply too long to queue at once (the text protocol's "lru_crawler
     * metadump"), produced as the client reads it: streaming is true while
     * more is to come, and the server then calls stream each time the
     * queue holds fewer than BC_HANDLER_STREAM_LOW_WATER bytes (a chunk
     * queued behind a hole counts: nothing more comes until it drains).
     * stream queues at least one byte, or ends the reply (streaming turns
     * false); it returns as process.  While streaming, a handler normally
     * holds input back too (waiting), so later replies follow the stream.
     * Both NULL: never streams. */
    bool (*streaming)(const void *conn);
    bc_status_t (*stream)(void *conn);
    /* memcached's name for what the connection does now, as "stats conns"
     * shows it: "conn_read" (waiting for a command), "conn_nread" (inside a
     * data block), "conn_swallow", "conn_io_queue" (held back, waiting);
     * a static string.  NULL: the server says "conn_read". */
    const char *(*state_name)(const void *conn);
    /* After BC_EHANDOFF: the arguments of the handoff line (*args, not
     * NUL-terminated, valid while the buffer given to process is); returns
     * their length, at most BC_HANDLER_HANDOFF_ARGS_MAX. */
    size_t (*handoff_args)(const void *conn, const char **args);
    /* True for another node's connection (not a client's): kept by
     * bc_server_close_clients.  NULL: every connection is a client's. */
    bool (*is_peer)(const void *conn);
} bc_handler_t;

#endif
