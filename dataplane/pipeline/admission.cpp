#include "dataplane/pipeline/admission.hpp"

namespace sekisho::pipeline {

const char* admission_name(Admission a) {
  switch (a) {
    case Admission::existing: return "existing";
    case Admission::started: return "started";
    case Admission::midstream: return "midstream";
    case Admission::table_full: return "table_full";
  }
  return "?";
}

}  // namespace sekisho::pipeline
