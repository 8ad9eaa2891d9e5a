/* echo_c.c - a minimal TCP echo server and client on libutcp's public C API.
 *
 *   echo_c [TEXT...]     sends TEXT (or, without TEXT, all of stdin) to an echo server
 *                        and writes what comes back to stdout
 *
 * Both ends run in this process: two stacks made with the raw-packet API (utcp/raw.h),
 * the server at 10.0.0.1 port 7 and the client at 10.0.0.2, joined by a "wire" of a few
 * lines that carries every IPv4 packet one stack emits into the other. Their clocks are
 * manual (virtual time), so the run does not depend on how fast the machine is. Over a
 * real network the same socket calls run on a stack made with utcp_stack_create() over
 * a device instead (see docs/api.md).
 *
 * Build against an installed libutcp:  cc echo_c.c $(pkg-config --cflags --libs utcp)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utcp/raw.h>
#include <utcp/utcp.h>

#define SERVER_IP 0x0a000001u /* 10.0.0.1 */
#define CLIENT_IP 0x0a000002u /* 10.0.0.2 */
#define ECHO_PORT 7
#define STEP_US 1000                  /* virtual time per idle round */
#define GIVE_UP_US (600LL * 1000000)  /* virtual time after which something is wrong */

static int fail(const char* what, int err) {
  fprintf(stderr, "echo_c: %s: %s\n", what, utcp_strerror(err));
  return 1;
}

/* The wire: moves every packet `from` has emitted into `to`. Returns how many moved. */
static int carry(utcp_stack* from, utcp_stack* to) {
  unsigned char pkt[65536];
  int moved = 0;
  ssize_t n;
  while ((n = utcp_raw_collect(from, pkt, sizeof pkt)) > 0) {
    if (utcp_raw_inject(to, pkt, (size_t)n) == 0) moved++;
  }
  return moved;
}

/* The input: the arguments joined by spaces plus a newline, or all of stdin. */
static unsigned char* read_input(int argc, char** argv, size_t* len) {
  size_t cap = 4096, n = 0;
  unsigned char* buf = malloc(cap);
  if (!buf) return NULL;
  if (argc > 1) {
    for (int i = 1; i < argc; i++) {
      size_t l = strlen(argv[i]);
      while (n + l + 2 > cap) {
        unsigned char* b = realloc(buf, cap *= 2);
        if (!b) return free(buf), NULL;
        buf = b;
      }
      memcpy(buf + n, argv[i], l);
      n += l;
      buf[n++] = i + 1 < argc ? ' ' : '\n';
    }
  } else {
    size_t r;
    while ((r = fread(buf + n, 1, cap - n, stdin)) > 0) {
      n += r;
      if (n == cap) {
        unsigned char* b = realloc(buf, cap *= 2);
        if (!b) return free(buf), NULL;
        buf = b;
      }
    }
    if (ferror(stdin)) return free(buf), NULL;
  }
  *len = n;
  return buf;
}

/* The server's one connection: echoes what it reads, closes after the client's FIN. */
struct server {
  int listener, conn;
  unsigned char buf[16384];
  size_t pending, off; /* read but not yet written back */
  int done;
};

static int server_step(utcp_stack* s, struct server* sv) {
  if (sv->done) return 0;
  if (sv->conn < 0) {
    int c = utcp_accept(s, sv->listener, NULL, NULL);
    if (c == -EAGAIN) return 0;
    if (c < 0) return fail("server accept", c);
    sv->conn = c;
  }
  for (;;) {
    while (sv->off < sv->pending) {
      ssize_t w = utcp_write(s, sv->conn, sv->buf + sv->off, sv->pending - sv->off);
      if (w == -EAGAIN) return 0; /* send buffer full: wait for ACKs */
      if (w < 0) return fail("server write", (int)w);
      sv->off += (size_t)w;
    }
    ssize_t r = utcp_read(s, sv->conn, sv->buf, sizeof sv->buf);
    if (r == -EAGAIN) return 0;
    if (r < 0) return fail("server read", (int)r);
    if (r == 0) { /* the client is done sending: so are we */
      int rc = utcp_close(s, sv->conn);
      if (rc < 0) return fail("server close", rc);
      sv->done = 1;
      return 0;
    }
    sv->pending = (size_t)r;
    sv->off = 0;
  }
}

/* The client: writes the input, half-closes, reads the echo until the server's FIN. */
struct client {
  int sock;
  const unsigned char* in;
  size_t in_len, sent;
  unsigned char* out;
  size_t out_len;
  int shut, eof;
};

static int client_step(utcp_stack* s, struct client* cl) {
  int ev = utcp_poll(s, cl->sock);
  if (ev < 0) return fail("client poll", ev);
  if (ev & UTCP_POLLERR) {
    int err = 0;
    size_t len = sizeof err;
    utcp_getsockopt(s, cl->sock, UTCP_SO_ERROR, &err, &len);
    return fail("client connect", err ? -abs(err) : -ECONNRESET);
  }
  if (!(ev & UTCP_POLLOUT) && !cl->shut) return 0; /* handshake not finished yet */
  while (cl->sent < cl->in_len) {
    ssize_t w = utcp_write(s, cl->sock, cl->in + cl->sent, cl->in_len - cl->sent);
    if (w == -EAGAIN) break;
    if (w < 0) return fail("client write", (int)w);
    cl->sent += (size_t)w;
  }
  if (cl->sent == cl->in_len && !cl->shut) {
    int rc = utcp_shutdown(s, cl->sock, UTCP_SHUT_WR);
    if (rc < 0) return fail("client shutdown", rc);
    cl->shut = 1;
  }
  for (;;) {
    ssize_t r = utcp_read(s, cl->sock, cl->out + cl->out_len, cl->in_len + 1 - cl->out_len);
    if (r == -EAGAIN) return 0;
    if (r < 0) return fail("client read", (int)r);
    if (r == 0) {
      cl->eof = 1;
      return 0;
    }
    cl->out_len += (size_t)r;
    if (cl->out_len > cl->in_len) {
      fprintf(stderr, "echo_c: the server sent back more than the client sent\n");
      return 1;
    }
  }
}

int main(int argc, char** argv) {
  if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
    printf("usage: echo_c [TEXT...]\n"
           "Sends TEXT (or all of stdin) through a utcp TCP connection to an echo server in\n"
           "this process and writes the echo to stdout. Exit status 1 if the echo differs.\n");
    return 0;
  }
  size_t in_len = 0;
  unsigned char* in = read_input(argc, argv, &in_len);
  if (!in) return fail("reading the input", -errno);
  unsigned char* out = malloc(in_len + 1);
  if (!out) return fail("allocating", -ENOMEM);

  /* Two stacks, MTU 1500, clocks starting at 0, random initial sequence numbers. */
  utcp_stack* srv = utcp_raw_create(SERVER_IP, 1500, 0, 0);
  utcp_stack* cli = utcp_raw_create(CLIENT_IP, 1500, 0, 0);
  if (!srv || !cli) return fail("creating the stacks", -errno);

  struct server* sv = calloc(1, sizeof *sv);
  if (!sv) return fail("allocating", -ENOMEM);
  sv->conn = -1;
  int rc;
  if ((sv->listener = utcp_socket(srv)) < 0) return fail("server socket", sv->listener);
  if ((rc = utcp_bind(srv, sv->listener, ECHO_PORT)) < 0) return fail("server bind", rc);
  if ((rc = utcp_listen(srv, sv->listener, 8)) < 0) return fail("server listen", rc);

  struct client cl = {.in = in, .in_len = in_len, .out = out};
  if ((cl.sock = utcp_socket(cli)) < 0) return fail("client socket", cl.sock);
  rc = utcp_connect(cli, cl.sock, SERVER_IP, ECHO_PORT);
  if (rc != -EINPROGRESS) return fail("client connect", rc);

  int64_t t = 0;
  while (!cl.eof) {
    if (server_step(srv, sv) || client_step(cli, &cl)) return 1;
    /* Socket calls take effect when a stack runs: run both now, then carry packets. */
    utcp_raw_advance(srv, 0);
    utcp_raw_advance(cli, 0);
    if (carry(cli, srv) + carry(srv, cli) > 0) continue;
    if (t > GIVE_UP_US) {
      fprintf(stderr, "echo_c: no progress after %lld s of virtual time\n", (long long)(t / 1000000));
      return 1;
    }
    utcp_raw_advance(srv, STEP_US); /* nothing on the wire: let timers run */
    utcp_raw_advance(cli, STEP_US);
    t += STEP_US;
  }
  if (fwrite(out, 1, cl.out_len, stdout) != cl.out_len) return fail("writing stdout", -EIO);
  int same = cl.out_len == in_len && memcmp(in, out, in_len) == 0;
  fprintf(stderr, "echo_c: sent %zu bytes, got %zu back%s\n", in_len, cl.out_len,
          same ? "" : " (DIFFERENT)");

  utcp_close(cli, cl.sock);
  utcp_close(srv, sv->listener);
  utcp_raw_destroy(cli);
  utcp_raw_destroy(srv);
  free(sv);
  free(out);
  free(in);
  return same ? 0 : 1;
}
