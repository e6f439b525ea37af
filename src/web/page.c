/* The web page of mira serve: its files, built into the binary. */
#include "web/web_int.h"

#include <string.h>

bool mira__page_route(const char *target)
{
    size_t n = strcspn(target, "?");
    return (n == 1 && target[0] == '/') || (n > 5 && memcmp(target, "/app/", 5) == 0);
}

void mira__page_serve(const char *method, const char *target, mira__http_reply *r)
{
    (void)target;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        mira__http_reply_error(r, 405, "%s is not allowed here: the page's files take GET",
                               method);
        return;
    }
    mira__http_reply_error(r, 404, "the web page is not part of this build");
}
