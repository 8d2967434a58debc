#include "scanners/message/message.hpp"

namespace sekisho::message {
namespace {

const char* const kAnomalyNames[] = {
#define X(name, text) #name,
#include "scanners/message/anomalies.def"
#undef X
};
const char* const kAnomalyTexts[] = {
#define X(name, text) text,
#include "scanners/message/anomalies.def"
#undef X
};
const char* const kDesyncNames[] = {
    "none",
#define X(name, text) #name,
#include "scanners/message/desync.def"
#undef X
};
const char* const kDesyncTexts[] = {
    "in sync",
#define X(name, text) text,
#include "scanners/message/desync.def"
#undef X
};

}  // namespace

const char* anomaly_name(Anomaly a) { return size_t(a) < kAnomalyCount ? kAnomalyNames[size_t(a)] : "?"; }
const char* anomaly_text(Anomaly a) { return size_t(a) < kAnomalyCount ? kAnomalyTexts[size_t(a)] : "?"; }
const char* desync_name(Desync d) { return size_t(d) < kDesyncCount ? kDesyncNames[size_t(d)] : "?"; }
const char* desync_text(Desync d) { return size_t(d) < kDesyncCount ? kDesyncTexts[size_t(d)] : "?"; }

}  // namespace sekisho::message
