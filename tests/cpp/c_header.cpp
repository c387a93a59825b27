// The C header on its own, compiled as C++17 with every warning as an error: it must need
// nothing from trm.hpp, declare its functions extern "C", and its initialiser must be valid C++.
#include "trm.h"

int main() {
  trm_event ev = TRM_EVENT_INIT;
  trm_model *model = nullptr;
  trm_session *session = nullptr;
  trm_status st = trm_model_load("", &model); // extern "C": links against the C library
  (void)trm_session_create(model, 1, &session);
  (void)trm_refine(session, &ev);
  trm_session_free(session);
  trm_model_free(model);
  trm_option opt = TRM_OPT_YIELD;
  trm_yield unit = TRM_YIELD_STEP;
  trm_halt halt = TRM_HALT_Q;
  trm_latent which = TRM_LATENT_Z;
  trm_slot_state state = TRM_SLOT_EMPTY;
  return (st == TRM_E_IO && ev.size == sizeof(trm_event) && opt && unit && halt && which && !state) ? 0 : 1;
}
