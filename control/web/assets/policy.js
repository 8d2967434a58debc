'use strict';
(() => {
  const {showError, nav} = Sekisho;
  nav().catch((e) => showError(document.getElementById('detail'), e));
})();
