/* Helpers shared by the index backends: transactions and one-value queries. */
#include "archive/db.h"

#include <stdlib.h>

bool mira__db_commit(mira__db *db, mira_error **err)
{
    return db->ops->exec(db, "COMMIT", err);
}

void mira__db_rollback(mira__db *db)
{
    (void)db->ops->exec(db, "ROLLBACK", NULL);
}

void mira__db_close(mira__db *db)
{
    if (db)
        db->ops->close(db);
}

typedef struct one_int {
    int64_t v;
    bool found;
} one_int;

static bool take_int(void *ctx, const mira__dbval *cols, size_t n)
{
    one_int *o = ctx;
    if (n > 0 && cols[0].type == MIRA__DB_INT) {
        o->v = cols[0].i;
        o->found = true;
    } else if (n > 0 && cols[0].type == MIRA__DB_TEXT) {
        o->v = strtoll(cols[0].s, NULL, 10);
        o->found = true;
    }
    return false;
}

bool mira__db_query_int(mira__db *db, const char *sql, const mira__dbval *params, size_t n,
                        int64_t *out, bool *found, mira_error **err)
{
    one_int o = {0, false};
    if (!mira__db_query(db, sql, params, n, take_int, &o, err))
        return false;
    *out = o.v;
    if (found)
        *found = o.found;
    return true;
}
