/*
** Buffers of encoded values (see 'atl_Buffer' in CLuaShim.h). A buffer owns
** its bytes and one reference on every host object that it names. Nothing
** here touches a 'lua_State' and nothing here aborts: a failed allocation
** leaves the buffer as it was and returns ATL_ERRMEM.
*/
#define buffer_c

#include <stdlib.h>
#include <string.h>

#include "shim_private.h"


#define MINCAP       64
#define MINHANDLES   4


/*
** Release every host object that 'b' retains, free its memory and zero it.
** A zeroed buffer is valid and empty; freeing it twice is harmless.
*/
void atl_buffer_free (atl_Buffer *b) {
  size_t i;
  if (b->nhandles > 0 && atl_host.release != NULL) {
    for (i = 0; i < b->nhandles; i++)
      atl_host.release(b->handles[i]);
  }
  free(b->handles);
  free(b->data);
  memset(b, 0, sizeof(*b));
}


/*
** Grow the byte array of 'b' so that 'extra' more bytes fit, doubling its
** capacity (geometric growth keeps appends amortised O(1)).
*/
static int growbytes (atl_Buffer *b, size_t extra) {
  size_t need, cap;
  unsigned char *p;
  if (extra > (size_t)-1 - b->len)
    return ATL_ERRMEM;  /* size overflow */
  need = b->len + extra;
  cap = (b->cap < MINCAP) ? MINCAP : b->cap;
  while (cap < need) {
    if (cap > (size_t)-1 / 2) { cap = need; break; }
    cap *= 2;
  }
  p = atl_fault() ? NULL : (unsigned char *)realloc(b->data, cap);
  if (p == NULL)
    return ATL_ERRMEM;
  b->data = p;
  b->cap = cap;
  return ATL_OK;
}


/*
** Append the 'n' bytes at 'p' to 'b'. ATL_OK, or ATL_ERRMEM with 'b'
** unchanged.
*/
int atl_buffer_append (atl_Buffer *b, const void *p, size_t n) {
  if (n == 0)
    return ATL_OK;
  if (b->cap - b->len < n && growbytes(b, n) != ATL_OK)
    return ATL_ERRMEM;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return ATL_OK;
}


/*
** Retain host object 'obj' (through 'atl_host.retain') and remember it, so
** that 'atl_buffer_free' releases it. On ATL_ERRMEM 'obj' is not retained.
*/
int atl_buffer_add_handle (atl_Buffer *b, void *obj) {
  if (b->nhandles == b->handlescap) {
    size_t cap = (b->handlescap == 0) ? MINHANDLES : b->handlescap * 2;
    void **h;
    if (cap > (size_t)-1 / sizeof(void *))
      return ATL_ERRMEM;
    h = atl_fault() ? NULL
        : (void **)realloc(b->handles, cap * sizeof(void *));
    if (h == NULL)
      return ATL_ERRMEM;
    b->handles = h;
    b->handlescap = cap;
  }
  if (atl_host.retain != NULL)
    atl_host.retain(obj);
  b->handles[b->nhandles++] = obj;
  return ATL_OK;
}
