/*
** CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of
** the process pool's frames. The SSE 4.2 'crc32' instruction computes it 8
** bytes per step; without it, a byte-wise table is used.
*/
#include "CProcessSpawn.h"

#include <pthread.h>
#include <string.h>

static uint32_t table[256];
static pthread_once_t tableonce = PTHREAD_ONCE_INIT;

static void buildtable(void) {
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = n;
    for (int k = 0; k < 8; k++)
      c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[n] = c;
  }
}

static uint32_t crctable(uint32_t crc, const unsigned char *p, size_t size) {
  pthread_once(&tableonce, buildtable);
  while (size-- > 0)
    crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t crchardware(uint32_t crc, const unsigned char *p, size_t size) {
  uint64_t c = crc;
  while (size >= 8) {
    uint64_t word;
    memcpy(&word, p, 8);
    c = __builtin_ia32_crc32di(c, word);
    p += 8;
    size -= 8;
  }
  uint32_t c32 = (uint32_t)c;
  while (size-- > 0)
    c32 = __builtin_ia32_crc32qi(c32, *p++);
  return c32;
}
#endif

uint32_t atp_crc32c(uint32_t crc, const void *data, size_t size) {
  const unsigned char *p = (const unsigned char *)data;
  crc = ~crc;
#if defined(__x86_64__)
  if (__builtin_cpu_supports("sse4.2"))
    return ~crchardware(crc, p, size);
#endif
  return ~crctable(crc, p, size);
}
