/** The security console: sign-in, then five views chosen by the URL's hash (#/overview, …). */
import { render } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { ApiError, currentSession, setSignedOutHandler, signIn, signOut } from './api';
import { ErrorBox, Loading, Time } from './components';
import { capabilitiesOf } from './lib/roles';
import type { Session } from './lib/types';
import { AuditView } from './views/audit';
import { FleetView } from './views/fleet';
import { OverviewView } from './views/overview';
import { RevokeView } from './views/revoke';
import { RotationsView } from './views/rotations';
import './console.css';

const VIEWS = [
  { id: 'overview', title: 'Overview', View: OverviewView },
  { id: 'revoke', title: 'Revoke', View: RevokeView },
  { id: 'fleet', title: 'Fleet', View: FleetView },
  { id: 'rotations', title: 'Rotations', View: RotationsView },
  { id: 'audit', title: 'Audit', View: AuditView },
] as const;

function routeFromHash(): string {
  const id = location.hash.replace(/^#\/?/, '').split('?')[0];
  return VIEWS.some((v) => v.id === id) ? id : 'overview';
}

function SignIn({ onSignedIn, notice }: { onSignedIn: (session: Session) => void; notice: string | null }) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.focus(), []);
  const submit = async (event: Event) => {
    event.preventDefault();
    const field = (event.currentTarget as HTMLFormElement).elements.namedItem('token') as HTMLInputElement;
    setBusy(true);
    setError(null);
    try {
      const session = await signIn(field.value);
      // The token is not kept anywhere: the form field is cleared, the session cookie stands for it.
      field.value = '';
      onSignedIn(session);
    } catch (e) {
      setError(
        e instanceof ApiError && e.status === 401
          ? 'That token was not accepted (unknown, expired or revoked).'
          : (e as Error).message,
      );
    } finally {
      setBusy(false);
    }
  };
  return (
    <main id="main" class="signin">
      <h1>Signet security console</h1>
      {notice && <p role="status">{notice}</p>}
      <form onSubmit={submit} aria-describedby="token-help">
        <label for="token">API token</label>
        <input id="token" name="token" type="password" autocomplete="off" spellcheck={false} required />
        <p id="token-help" class="muted">
          The token is exchanged for a session cookie and not stored by this page.
        </p>
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
      </form>
    </main>
  );
}

function Shell({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const [route, setRoute] = useState(routeFromHash());
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    const changed = () => setRoute(routeFromHash());
    addEventListener('hashchange', changed);
    return () => removeEventListener('hashchange', changed);
  }, []);
  // Keyboard and screen-reader users land on the new view's heading: in the same render that shows
  // it (a layout effect), not a frame later, so the heading never appears without the focus.
  useLayoutEffect(() => heading.current?.focus(), [route]);
  const capabilities = capabilitiesOf(session.role);
  const current = VIEWS.find((v) => v.id === route)!;
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), heading.current?.focus())}>
        Skip to content
      </a>
      <header class="top">
        <span class="brand">Signet</span>
        <nav aria-label="Views">
          <ul>
            {VIEWS.map((v) => (
              <li key={v.id}>
                <a href={`#/${v.id}`} aria-current={v.id === route ? 'page' : undefined}>
                  {v.title}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          <span data-testid="who">
            {session.tokenName} · <strong data-testid="role">{session.role}</strong>
          </span>
          <span class="muted">
            session ends <Time iso={session.idleExpiresAt} />
          </span>
          <button type="button" onClick={onSignOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main">
        <h1 tabIndex={-1} ref={heading}>
          {current.title}
        </h1>
        {capabilities.read ? (
          <current.View session={session} capabilities={capabilities} />
        ) : (
          <p class="empty" role="status">
            The {session.role} role has no access to the console views (API.md: signers sign; they do not read the
            security state).
          </p>
        )}
      </main>
    </>
  );
}

function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [error, setError] = useState<Error | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  useEffect(() => {
    setSignedOutHandler(() => {
      setNotice('Your session ended. Sign in again.');
      setSession(null);
    });
    currentSession().then(setSession, setError);
  }, []);
  if (error) return <ErrorBox error={error} retry={() => location.reload()} />;
  if (session === undefined) return <Loading what="session" />;
  if (session === null) return <SignIn notice={notice} onSignedIn={(s) => (setNotice(null), setSession(s))} />;
  return (
    <Shell
      session={session}
      onSignOut={() =>
        signOut().then(
          () => (setNotice('Signed out.'), setSession(null)),
          (e: Error) => setError(e),
        )
      }
    />
  );
}

render(<App />, document.getElementById('app')!);
