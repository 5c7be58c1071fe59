/** A WebSocket constructor (the standard one, or e.g. the ws package's). */
export type WSCtor = new (url: string) => any;
/** An EventSource constructor. */
export type ESCtor = new (url: string) => any;
/** A message of a push frame. */
export interface Message {
    id: string;
    data: unknown;
    ts: number;
    seq?: number;
    room?: string;
    pos?: number;
    from?: string;
    /** The message's event name (a push's `event`, or a Pusher client event's); absent for "message". */
    event?: string;
}
/** A refusal: an error frame, a close code, or a client-side error (code 0). */
export interface HeraldError {
    code: number;
    reason: string;
}
/** The connection state. */
export type State = "connecting" | "connected" | "disconnected";
/** Details of a "disconnected" state: why, and the delay before the next attempt (none: stopped). */
export interface Disconnect extends HeraldError {
    retryIn?: number;
}
/** A replay said complete:false: the stored messages between since and to are partly gone. */
export interface Gap {
    since: number;
    to: number;
    room?: string;
}
/** The targets of a send. */
export interface Targets {
    users?: string[];
    rooms?: string[];
}
/** The part of the Web Storage API the client uses. */
export interface StorageLike {
    getItem(key: string): string | null;
    setItem(key: string, value: string): void;
}
/** Options of a Herald client. */
export interface Options {
    /** A token, or a (sync or async) function called before every connect. */
    token?: string | (() => string | Promise<string>);
    /** Extra query parameters (dev mode identity: app, user, device). */
    params?: Record<string, string>;
    /** Ack each stored message once every "message" handler returned (default true). */
    autoAck?: boolean;
    /** Transports in order of preference; the first that works is kept. Default ["websocket", "sse"]. */
    transports?: ("websocket" | "sse")[];
    /** Where the last seq and room positions survive a reload; false: memory only. Default localStorage where it exists. */
    storage?: StorageLike | false;
    /** A WebSocket constructor; default globalThis.WebSocket. */
    WebSocket?: WSCtor;
    /** An EventSource constructor; default globalThis.EventSource. */
    EventSource?: ESCtor;
}
/** The events and the arguments their handlers get. */
export interface Events {
    message: (m: Message) => void;
    state: (s: State, info?: Disconnect) => void;
    gap: (g: Gap) => void;
    recall: (r: {
        id: string;
    }) => void;
    error: (e: HeraldError) => void;
}
/** Herald is a client of a Herald server: one logical connection that reconnects and resumes by itself. */
export declare class Herald {
    private base;
    private opts;
    private handlers;
    private t;
    private gen;
    private stopped;
    private connected;
    private attempt;
    private authFails;
    private kind;
    private kept;
    private timer;
    private ping;
    private heard;
    private replaying;
    private user;
    private seq;
    private floor;
    private acked;
    private toAck;
    private pos;
    private rooms;
    private ops;
    private seen;
    private seenSet;
    private store;
    /** Creates a client of the node at url (ws://, wss://, http:// or https://); connect() starts it. */
    constructor(url: string, opts?: Options);
    /** Adds a handler for an event and returns a function that removes it. */
    on<K extends keyof Events>(event: K, fn: Events[K]): () => void;
    /** Starts connecting (again, after close()). */
    connect(): void;
    /** Joins a room; resolves on "joined", rejects with {code, reason}. The room is rejoined after every reconnect. */
    join(room: string): Promise<void>;
    /** Leaves a room; resolves on "left". */
    leave(room: string): Promise<void>;
    /** Acks every stored message up to seq for this user (all devices); for autoAck: false. */
    ack(seq: number): void;
    /** Sends data to users and rooms of the app; resolves once handed to the server (errors arrive as "error" events). */
    send(to: Targets, data: unknown): Promise<void>;
    /** Closes the connection for good; no timer is left running. */
    close(): void;
    private open;
    private ended;
    private stop;
    private drop;
    private frame;
    private welcome;
    private push;
    private dup;
    private error;
    private op;
    private rejoin;
    private pump;
    private answer;
    private next;
    private flushAck;
    private key;
    private load;
    private save;
    private emit;
}
