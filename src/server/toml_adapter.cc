// The one C++ file of the server: toml++ has no C API.
#define TOML_EXCEPTIONS 0
#include "server/toml_adapter.h"

#include <cstdio>
#include <string>
#include <toml++/toml.h>

namespace {

int walk(const toml::node &n, const std::string &key, ck_toml_cb cb, void *arg)
{
    if (const toml::table *t = n.as_table()) {
        for (auto &&kv : *t) {
            std::string k = key.empty() ? std::string(kv.first.str()) : key + "." + std::string(kv.first.str());
            int rc = walk(kv.second, k, cb, arg);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (const toml::array *a = n.as_array()) {
        bool scalars = true;
        for (auto &&e : *a)
            scalars = scalars && !e.is_table() && !e.is_array();
        if (scalars) {
            std::string joined;
            for (auto &&e : *a) {
                if (!joined.empty())
                    joined += ",";
                if (auto s = e.value<std::string>())
                    joined += *s;
                else if (auto i = e.value<int64_t>())
                    joined += std::to_string(*i);
            }
            return cb(arg, key.c_str(), joined.c_str());
        }
        size_t i = 0;
        for (auto &&e : *a) {
            int rc = walk(e, key + "." + std::to_string(i++), cb, arg);
            if (rc)
                return rc;
        }
        return 0;
    }
    std::string v;
    if (auto s = n.value_exact<std::string>())
        v = *s;
    else if (auto b = n.value_exact<bool>())
        v = *b ? "true" : "false";
    else if (auto i = n.value_exact<int64_t>())
        v = std::to_string(*i);
    else if (auto d = n.value_exact<double>())
        v = std::to_string(*d);
    else
        return 0; // dates and times: no setting uses them
    return cb(arg, key.c_str(), v.c_str());
}

} // namespace

extern "C" int ck_toml_load(const char *path, ck_toml_cb cb, void *arg, char *err, int errlen)
{
    toml::parse_result res = toml::parse_file(path);
    if (!res) {
        const toml::parse_error &e = res.error();
        std::snprintf(err, (size_t)errlen, "%s:%u:%u: %.*s", path, (unsigned)e.source().begin.line,
                      (unsigned)e.source().begin.column, (int)e.description().size(),
                      e.description().data());
        return -1;
    }
    return walk(res.table(), "", cb, arg);
}
