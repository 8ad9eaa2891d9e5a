/* api_c_test.c - the public headers compile as C and the API links from C: a raw stack
 * answers a SYN to a listening port with a SYN,ACK (RFC 9293 §3.10.7.2). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "utcp/raw.h"
#include "utcp/utcp.h"

static unsigned short csum(const unsigned char* p, size_t n, unsigned long sum) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += (unsigned long)(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += (unsigned long)(p[n - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (unsigned short)~sum;
}

#define CHECK(c)                                              \
  do {                                                        \
    if (!(c)) {                                               \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
      return 1;                                               \
    }                                                         \
  } while (0)

int main(void) {
  const uint32_t ip = 0x0a000001, peer = 0x0a000002;
  utcp_stack* s = utcp_raw_create(ip, 1500, 1000000, 7);
  CHECK(s != NULL);
  int l = utcp_socket(s);
  CHECK(l >= 0);
  CHECK(utcp_bind(s, l, 80) == 0);
  CHECK(utcp_listen(s, l, 4) == 0);
  CHECK(utcp_accept(s, l, NULL, NULL) == -EAGAIN);

  /* IPv4 (20) + TCP (20) SYN from peer:1234 to ip:80, seq 100. */
  unsigned char pkt[40] = {0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0,
                           10, 0, 0, 2, 10, 0, 0, 1};
  unsigned char* t = pkt + 20;
  t[0] = 1234 >> 8; t[1] = 1234 & 0xff; t[2] = 0; t[3] = 80;
  t[7] = 100;          /* seq */
  t[12] = 5 << 4;      /* data offset */
  t[13] = 0x02;        /* SYN */
  t[14] = 0xff; t[15] = 0xff;
  unsigned short ipc = csum(pkt, 20, 0);
  pkt[10] = (unsigned char)(ipc >> 8); pkt[11] = (unsigned char)ipc;
  unsigned long pseudo = (peer >> 16) + (peer & 0xffff) + (ip >> 16) + (ip & 0xffff) + 6 + 20;
  unsigned short tc = csum(t, 20, pseudo);
  t[16] = (unsigned char)(tc >> 8); t[17] = (unsigned char)tc;
  CHECK(utcp_raw_inject(s, pkt, sizeof pkt) == 0);

  unsigned char out[1600];
  ssize_t n = utcp_raw_collect(s, out, sizeof out);
  CHECK(n >= 40);
  CHECK((out[20 + 13] & 0x12) == 0x12);         /* SYN,ACK */
  CHECK(out[20 + 11] == 101 && out[20 + 10] == 0); /* ACK = 101 */
  CHECK(utcp_raw_collect(s, out, sizeof out) == 0);
  CHECK(strlen(utcp_strerror(-ECONNRESET)) > 0);
  CHECK(utcp_close(s, l) == 0);
  utcp_raw_destroy(s);
  printf("ok\n");
  return 0;
}
