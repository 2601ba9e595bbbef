// The card page with a gateway's own script (Stripe.js): the card or IBAN goes from this browser to Stripe, never to
// Tranche. On submit the page asks Tranche for a SetupIntent of this installment, Stripe.js confirms it (3-D Secure
// included), and only then the form posts, carrying nothing but the SetupIntent's id.
"use strict";

(() => {
  const config = document.currentScript.dataset;
  const locale = document.documentElement.lang;
  // Stripe.js may have been blocked or not have loaded: the customer is told on submit, nothing is posted.
  const stripe = typeof Stripe === "function" ? Stripe(config.key, { locale }) : null;
  const card = stripe && stripe.elements({ locale }).create("card", { hidePostalCode: true });
  if (card) {
    card.mount("#card-element");
  }

  async function setupIntentSecret(form) {
    const answer = await fetch(config.setupUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      body: new URLSearchParams({ form_token: form.elements.form_token.value, method: form.dataset.setup }),
    });
    const body = await answer.json().catch(() => ({}));
    if (!answer.ok || !body.client_secret) {
      throw new Error(body.error || config.failed);
    }
    return body.client_secret;
  }

  function confirmSetup(form, secret) {
    if (form.dataset.setup === "card") {
      return stripe.confirmCardSetup(secret, { payment_method: { card } });
    }
    return stripe.confirmSepaDebitSetup(secret, {
      payment_method: {
        sepa_debit: { iban: form.querySelector("#iban").value.replace(/\s+/g, "").toUpperCase() },
        billing_details: { name: form.querySelector("#holder").value.trim(), email: form.dataset.email },
      },
    });
  }

  async function setUp(form) {
    if (!stripe) {
      throw new Error(config.failed);
    }
    const result = await confirmSetup(form, await setupIntentSecret(form));
    if (result.error) {
      throw new Error(result.error.message || config.failed);
    }
    return result.setupIntent.id;
  }

  for (const form of document.querySelectorAll("form[data-setup]")) {
    const button = form.querySelector("button[type=submit]");
    const alert = form.querySelector("[role=alert]");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      // One setup at a time: a second click while Stripe answers must not start another.
      if (button.disabled) {
        return;
      }
      button.disabled = true;
      alert.hidden = true;
      try {
        form.elements.setup_intent.value = await setUp(form);
      } catch (error) {
        alert.textContent = (error && error.message) || config.failed;
        alert.hidden = false;
        button.disabled = false;
        return;
      }
      // submit() fires no submit event: the form posts once, with the SetupIntent's id.
      form.submit();
    });
  }
})();
