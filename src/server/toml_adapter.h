/* Reads a TOML file (through toml++) and reports every scalar as a dotted key and its text
 * value ("bind.kafka" → "0.0.0.0:9092"; booleans as true/false; arrays of scalars joined
 * with commas; tables of arrays as key.N.sub). Thread: any. */
#ifndef CK_SERVER_TOML_ADAPTER_H
#define CK_SERVER_TOML_ADAPTER_H

#ifdef __cplusplus
extern "C" {
#endif

typedef int (*ck_toml_cb)(void *arg, const char *key, const char *value);

/* Returns 0, or -1 with a message (file, line, what) in err. A non-zero return of cb stops
 * the walk and is returned. */
int ck_toml_load(const char *path, ck_toml_cb cb, void *arg, char *err, int errlen);

#ifdef __cplusplus
}
#endif
#endif
