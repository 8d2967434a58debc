// The one error type of the control plane's storage: every Db driver throws
// it on any database failure (with the database's own message), and the
// stores built on Db throw it for stored data they cannot use.
#pragma once

#include <stdexcept>

namespace sekisho::control::db {

class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace sekisho::control::db
